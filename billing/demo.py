"""Demo billing data for `seed_demo`: a pack bought through the sandbox and a promotion code to try."""

from decimal import Decimal

from accounts.models import Membership, Organization
from billing.models import CreditPackage, Promotion, Purchase
from billing.services import create_quote, sandbox_allowed, start_purchase

DEMO_PROMOTION = "DEMO10"


def seed_demo_billing(*, organization: Organization) -> None:
    """Idempotent: the promotion once, and one sandbox purchase when the sandbox is on (DEBUG, no keys)."""
    Promotion.objects.get_or_create(
        code=DEMO_PROMOTION, defaults={"percent_off": Decimal(10), "description": "Demo: 10% off a purchase"}
    )
    if not sandbox_allowed() or Purchase.objects.filter(organization=organization).exists():
        return
    package = CreditPackage.objects.filter(active=True).order_by("credits").first()
    admin = Membership.objects.filter(organization=organization, role=Membership.Role.CLIENT_ADMIN).first()
    if package is None or admin is None:
        return
    quote = create_quote(organization=organization, package_id=package.pk, actor=admin.user)
    start_purchase(organization=organization, quote_id=quote.pk, provider="sandbox", actor=admin.user)
