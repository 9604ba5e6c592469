"""Reads shared by billing's pages, API and commands."""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db.models import (
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    OuterRef,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Greatest
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import Organization
from accounts.scoping import get_object_for_request, get_request_organization
from billing.models import BulkDiscountTier, CreditPackage, Dispute, Plan, Purchase, Subscription
from credits.models import Account, Entry

MONEY = DecimalField(max_digits=12, decimal_places=2)


def get_plan_for_organization(*, organization: Organization) -> Plan:
    """The organization's current plan (every organization has one, `free` by default)."""
    return Plan.objects.get(code=organization.plan_id)


def list_active_plans() -> list[Plan]:
    return list(Plan.objects.filter(is_active=True))


def list_active_packages() -> list[CreditPackage]:
    return list(CreditPackage.objects.filter(active=True))


def list_bulk_tiers() -> list[BulkDiscountTier]:
    return list(BulkDiscountTier.objects.all())


def get_subscription(*, organization: Organization) -> Subscription | None:
    return Subscription.objects.select_related("plan").filter(organization=organization).first()


def _money_lost_to_chargebacks():
    """Per purchase: the money its lost Stripe chargebacks took back (0 without)."""
    lost = (
        Dispute.objects.filter(purchase=OuterRef("pk"))
        .values("purchase")
        .annotate(total=Sum("money_lost"))
        .values("total")
    )
    return Coalesce(Subquery(lost, output_field=MONEY), Value(Decimal("0.00")), output_field=MONEY)


def list_purchases_for_request(request: HttpRequest) -> QuerySet[Purchase]:
    """The request's organization's purchases, newest first (pending ones that never completed left out),
    each with `money_lost`: what lost chargebacks took back of it."""
    organization = get_request_organization(request)
    return (
        Purchase.objects.filter(organization=organization)
        .exclude(status__in=[Purchase.Status.PENDING, Purchase.Status.EXPIRED])
        .annotate(money_lost=_money_lost_to_chargebacks())
        .select_related("plan", "quote")
        .prefetch_related("disputes")
    )


def get_purchase_for_request(request: HttpRequest, purchase_id: int) -> Purchase:
    """One purchase of the request's organization, else 404 (staff: any)."""
    return get_object_for_request(
        request, Purchase.objects.select_related("organization", "plan", "quote", "quote__promotion"), pk=purchase_id
    )


def list_open_disputes(*, organization: Organization) -> QuerySet[Dispute]:
    return Dispute.objects.filter(organization=organization, status=Dispute.Status.OPEN)


def get_dispute_refundable_credits(*, purchase: Purchase | None) -> int:
    """How many credits resolving a dispute on `purchase` may still give back.

    The ledger's rule for refunds, applied to the purchase: together never more than the
    original. That is the purchase's credits (bonus included) less its provider refunds'
    share (`credits_reclaimed` plus `credits_shortfall`: refunded money whose credits were
    taken back, or were already spent) less what earlier resolutions of its disputes gave
    back. Money that comes back after a payout takes back the part of the payout it covers
    too (billing.services._take_back_share); that part is counted in both terms, which can
    only happen once nothing is left, and the answer is then 0. A dispute without a
    completed purchase can give nothing back. Lock the purchase row first when the answer
    decides a write (billing.services.resolve_dispute does).
    """
    if purchase is None or purchase.completed_at is None:
        return 0
    given_back = Dispute.objects.filter(purchase=purchase).aggregate(total=Sum("credits_refunded"))["total"] or 0
    return max(0, purchase.credits - purchase.credits_reclaimed - purchase.credits_shortfall - given_back)


@dataclass(frozen=True)
class CreditSummary:
    balance: int
    status: str
    days: int
    purchased: int
    subscription: int
    promotions: int
    spent: int
    refunded: int
    other: int
    usage_events: int
    purchases_total: str


def get_credit_summary(*, organization: Organization, days: int = 30) -> CreditSummary:
    """Credits in and out of the wallet over the last `days`, by kind (one aggregate query on entries)."""
    wallet = Account.objects.get(organization=organization)
    since = timezone.now() - timedelta(days=days)
    rows = (
        Entry.objects.filter(account=wallet, created_at__gte=since)
        .values("transaction__kind")
        .annotate(total=Sum("amount"), count=Count("id"))
    )
    by_kind = {row["transaction__kind"]: (row["total"] or 0, row["count"]) for row in rows}
    known = {"purchase", "subscription_grant", "promotion", "usage", "refund"}
    other = sum(total for kind, (total, _) in by_kind.items() if kind not in known)
    # What the organization paid and kept paid: refunds and lost chargebacks took money back.
    kept = Greatest(F("amount") - F("refunded_amount") - _money_lost_to_chargebacks(), Value(Decimal("0.00")))
    paid = Purchase.objects.filter(
        organization=organization,
        completed_at__gte=since,
        status__in=["completed", "partially_refunded", "refunded"],
    ).annotate(kept=ExpressionWrapper(kept, output_field=MONEY)).aggregate(total=Sum("kept"))["total"] or Decimal(
        "0.00"
    )
    return CreditSummary(
        balance=wallet.balance,
        status=wallet.status,
        days=days,
        purchased=by_kind.get("purchase", (0, 0))[0],
        subscription=by_kind.get("subscription_grant", (0, 0))[0],
        promotions=by_kind.get("promotion", (0, 0))[0],
        spent=-by_kind.get("usage", (0, 0))[0],
        refunded=-by_kind.get("refund", (0, 0))[0],
        other=other,
        usage_events=by_kind.get("usage", (0, 0))[1],
        purchases_total=f"{paid:.2f}",
    )
