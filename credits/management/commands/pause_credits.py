from typing import Any

from core.management.base import JsonCommand
from credits.management.commands._lookup import organization_for_email
from credits.services import pause_credits


class Command(JsonCommand):
    help = "Pause the credits of the organization of the user with EMAIL: usage is refused until resumed."

    def add_arguments(self, parser):
        parser.add_argument("email")

    def run(self, **options: Any) -> dict[str, Any]:
        organization = organization_for_email(options["email"])
        wallet = pause_credits(organization=organization)
        return {"orgId": organization.pk, "status": wallet.status}
