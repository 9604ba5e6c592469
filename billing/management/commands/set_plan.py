from typing import Any

from accounts.models import User
from billing.services import change_plan
from core.errors import NotFoundError
from core.management.base import JsonCommand


class Command(JsonCommand):
    help = "Put a customer's organization on a plan (free, starter, professional, enterprise, or any staff added)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("email")
        parser.add_argument("plan_code")

    def run(self, **options: Any) -> dict[str, Any]:
        user = User.objects.filter(email__iexact=options["email"]).select_related("membership__organization").first()
        membership = getattr(user, "membership", None) if user is not None else None
        if membership is None:
            raise NotFoundError(f"No customer with the email {options['email']} in an organization.")
        organization = change_plan(organization=membership.organization, plan_code=options["plan_code"])
        return {"orgId": organization.pk, "plan": organization.plan_id}
