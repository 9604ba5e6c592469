from typing import Any

from accounts.services import create_customer
from core.management.base import JsonCommand


class Command(JsonCommand):
    help = "Create a customer user; --org joins an existing organization or creates a new one."

    def add_arguments(self, parser) -> None:
        parser.add_argument("email")
        parser.add_argument("--org", dest="org", help="organization slug (existing: join; new: create)")
        parser.add_argument("--role", choices=["client_admin", "member"])
        parser.add_argument("--password")

    def run(self, **options: Any) -> dict[str, Any]:
        user = create_customer(
            email=options["email"], password=options["password"], org_slug=options["org"], role=options["role"]
        )
        return {"userId": user.pk, "orgId": user.membership.organization_id}
