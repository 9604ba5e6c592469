from typing import Any

from core.management.base import JsonCommand
from core.publisher import resync


class Command(JsonCommand):
    help = (
        "Write every API key and organization hash to Redis in batches (never over a higher version), "
        "delete key hashes of keys that no longer exist, and print how many hashes were written."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="replace hashes even when Redis holds a higher version (after restoring the database)",
        )

    def run(self, **options: Any) -> dict[str, Any]:
        result = resync(force=options["force"])
        return {"keys": result["keys"], "orgs": result["orgs"]}
