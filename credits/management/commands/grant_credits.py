from typing import Any

from core.management.base import JsonCommand, integer_argument
from credits.management.commands._lookup import organization_for_email
from credits.services import admin_add_credits


class Command(JsonCommand):
    help = "Grant credits to the organization of the user with EMAIL (a paused wallet can receive them)."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("amount", type=integer_argument(minimum=1), help="Whole number of credits, at least 1.")
        parser.add_argument("--reason", default="Granted by an operator (manage.py grant_credits)")

    def run(self, **options: Any) -> dict[str, Any]:
        organization = organization_for_email(options["email"])
        txn = admin_add_credits(organization=organization, amount=options["amount"], reason=options["reason"])
        return {
            "orgId": organization.pk,
            "balance": next(iter(txn.balances_after.values())),
            "transactionId": str(txn.pk),
        }
