"""Demo data for `make run`: an organization, its users, credits, keys and usage. Idempotent.

The staff log-in (a superuser whose password the README prints) is created only with
DEBUG on: on a production setup anyone could log in with it and own the admin. A staff
user left by an earlier run with DEBUG on is neither changed nor printed.
"""

from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db import transaction

from accounts.models import Organization, User
from accounts.services import create_customer
from core.management.base import JsonCommand
from credits import system_accounts
from credits.models import Transaction
from credits.services import grant_credits

DEMO_ORG = "demo"
DEMO_PASSWORD = "creditdesk-demo"
LOGINS = [
    {"email": "admin@demo.creditdesk.test", "password": DEMO_PASSWORD, "role": "client_admin"},
    {"email": "member@demo.creditdesk.test", "password": DEMO_PASSWORD, "role": "member"},
    {"email": "staff@creditdesk.test", "password": DEMO_PASSWORD, "role": "staff"},
]


class Command(JsonCommand):
    help = "Create the demo organization, users, credits, API keys and usage (running it again adds nothing)."

    @transaction.atomic
    def run(self, **options: Any) -> dict[str, Any]:
        logins = [login for login in LOGINS if settings.DEBUG or login["role"] != "staff"]
        for login in logins:
            user = User.objects.filter(email__iexact=login["email"]).first()
            if user is None and login["role"] == "staff":
                user = User.objects.create_superuser(email=login["email"], password=login["password"])
            elif user is None:
                user = create_customer(
                    email=login["email"], password=login["password"], org_slug=DEMO_ORG, role=login["role"]
                )
            # Verified, so that the demo can show two-factor sign-in, which allauth offers
            # only to verified addresses.
            EmailAddress.objects.get_or_create(
                user=user, email=user.email, defaults={"verified": True, "primary": True}
            )
        organization = Organization.objects.get(slug=DEMO_ORG)
        organization.name = "Demo Analytics Inc."
        organization.save(update_fields=["name"])
        grant_credits(
            organization=organization,
            amount=5000,
            source=system_accounts.PROMOTION_GRANTS,
            kind=Transaction.Kind.PROMOTION,
            reason="Demo starting credits",
            idempotency_key="seed_demo:welcome-credits",
        )
        from usage.demo import seed_demo_usage

        seed_demo_usage(organization=organization)
        from billing.demo import seed_demo_billing

        seed_demo_billing(organization=organization)
        return {"logins": logins}
