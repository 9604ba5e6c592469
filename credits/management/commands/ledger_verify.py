import json
from typing import Any

from django.core.management.base import CommandError

from core.management.base import JsonCommand
from credits.selectors import verify_ledger


class Command(JsonCommand):
    help = (
        "Check every ledger invariant (zero-sum transactions, balances equal to their entries, balance_after "
        "chains, overdraft limits); exit 1 listing the violations."
    )

    def run(self, **options: Any) -> dict[str, Any]:
        check = verify_ledger()
        if check.ok:
            return {"ok": True, "accounts": check.accounts, "transactions": check.transactions}
        self.stdout.write(json.dumps({"ok": False, "violations": check.violations}, default=str))
        raise CommandError(f"The ledger has {len(check.violations)} invariant violation(s).", returncode=1)
