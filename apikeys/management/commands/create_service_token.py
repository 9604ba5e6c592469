from typing import Any

from apikeys.services import create_service_account
from core.management.base import JsonCommand


class Command(JsonCommand):
    help = "Create a service account for the public query API and print its DRF token (a name already used fails)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="1 to 64 characters of a-z, 0-9, '.', '_' and '-'")

    def run(self, **options: Any) -> dict[str, Any]:
        _user, token = create_service_account(name=options["name"])
        return {"token": token}
