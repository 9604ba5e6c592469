"""Billing: plans, pricing data, quotes, purchases, subscriptions and disputes.

- Prices are data staff edit in the admin: plans, credit packs, bulk discount tiers and
  promotions. The base rate per credit is the setting CREDIT_BASE_RATE.
- A Quote is the price we promised, stored on our side for 30 minutes. Starting a payment
  turns it into a Purchase (one per quote); the provider's confirmation (Stripe webhook,
  PayPal capture or webhook, the sandbox) completes the Purchase, and the credits granted
  are always the quote's, never what a client or a provider's metadata claims.
- Credits only move through credits.services, with one idempotency key per provider
  payment (`stripe:checkout:<session>`, `stripe:invoice:<invoice>`, `paypal:capture:<id>`).
- Money is Decimal with 2 places, in `usd`.
"""

import json
import re
import uuid
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Upper
from django.utils import timezone

from billing.pricing import TierRule, tier_order_problem

# The plan every organization starts on and falls back to when a subscription ends
# (accounts.Organization.plan's default, billing.services): it is always active.
DEFAULT_PLAN_CODE = "free"
DEFAULT_PLAN_INACTIVE_MESSAGE = (
    "The Free plan is the default every organization starts on and returns to when a subscription ends: "
    "it cannot be deactivated."
)


# The contract's `queryType` (docs/public-contract.md): what a plan may list.
QUERY_TYPE_PATTERN = re.compile(r"\A[a-z0-9_.-]{1,64}\Z")


def plan_allows_query_type(allows_all_query_types: bool, allowed_query_types: list[str], query_type: str) -> bool:
    return allows_all_query_types or query_type in allowed_query_types


class Plan(models.Model):
    """A plan and its quotas, as data staff edit in the admin. Every organization is on one."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    monthly_price = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0.00"))
    monthly_credits = models.PositiveIntegerField(default=0)
    allows_all_query_types = models.BooleanField(default=False)
    allowed_query_types = models.JSONField(
        default=list,
        blank=True,
        help_text=(
            'When not all query types are allowed: a JSON list of the allowed ones, e.g. ["standard", "search"] '
            "(each 1 to 64 characters of a-z, 0-9, '_', '.' and '-'). Leave [] when all are allowed."
        ),
    )
    max_api_keys = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no limit.")
    requests_per_minute = models.PositiveIntegerField(default=60)
    subscriber_discount_percent = models.DecimalField(
        max_digits=5, decimal_places=2, default=Decimal("0.00"), help_text="Off extra credit purchases."
    )
    stripe_price_id = models.CharField(
        max_length=255, blank=True, help_text="The recurring Stripe Price (price_...) customers subscribe to."
    )
    is_active = models.BooleanField(default=True)
    sort_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "monthly_price"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(monthly_price__gte=0),
                name="billing_plan_price_nonneg",
                violation_error_message="The monthly price cannot be negative (0.00 for a free plan).",
            ),
            models.CheckConstraint(
                condition=models.Q(subscriber_discount_percent__gte=0, subscriber_discount_percent__lte=100),
                name="billing_plan_discount_range",
                violation_error_message="The subscriber discount is a percentage from 0 to 100.",
            ),
            models.CheckConstraint(
                condition=Q(is_active=True) | ~Q(code=DEFAULT_PLAN_CODE),
                name="billing_plan_default_active",
                violation_error_message=DEFAULT_PLAN_INACTIVE_MESSAGE,
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # Also here, not only in the constraint: the admin form shows `code` read-only, and
        # Django skips validating a constraint on a field the form does not edit.
        errors = {}
        if self.code == DEFAULT_PLAN_CODE and not self.is_active:
            errors["is_active"] = DEFAULT_PLAN_INACTIVE_MESSAGE
        problem = self._allowed_query_types_problem()
        if problem:
            errors["allowed_query_types"] = problem
        if errors:
            raise ValidationError(errors)

    def _allowed_query_types_problem(self) -> str | None:
        types = self.allowed_query_types
        example = 'e.g. ["standard", "search"]'
        # A JSON string would be matched character by character ("s", "t", ...).
        if not isinstance(types, list):
            return f"Enter a JSON list of query type names, {example}, not a single value or an object."
        bad = [value for value in types if not isinstance(value, str) or not QUERY_TYPE_PATTERN.match(value)]
        if bad:
            shown = ", ".join(json.dumps(value) for value in bad[:5])
            return (
                f"Not a query type name: {shown}. Each is a string of 1 to 64 characters of a-z, 0-9, "
                f"'_', '.' and '-', {example}."
            )
        if len(set(types)) != len(types):
            return "List each query type once."
        if self.allows_all_query_types and types:
            return "This plan allows all query types: leave the list empty ([]), or untick “Allows all query types”."
        if not self.allows_all_query_types and not types:
            return (
                "A plan that does not allow all query types must list at least one, "
                f"{example}; otherwise every usage report is refused."
            )
        return None

    def allows_query_type(self, query_type: str) -> bool:
        return plan_allows_query_type(self.allows_all_query_types, self.allowed_query_types, query_type)

    @property
    def is_paid(self) -> bool:
        return self.monthly_price > 0


class CreditPackage(models.Model):
    """A pack of credits at a fixed price."""

    name = models.CharField(max_length=100)
    credits = models.PositiveIntegerField()
    price = models.DecimalField(max_digits=10, decimal_places=2)
    active = models.BooleanField(default=True)
    sort_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "credits"]
        constraints = [
            models.CheckConstraint(
                condition=Q(credits__gte=1),
                name="billing_package_credits_positive",
                violation_error_message="A credit pack holds at least 1 credit.",
            ),
            models.CheckConstraint(
                condition=Q(price__gt=0),
                name="billing_package_price_positive",
                violation_error_message="A credit pack's price must be more than 0.00.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.credits} credits, ${self.price})"


class BulkDiscountTier(models.Model):
    """A percentage off custom amounts of at least `min_credits` (the highest tier reached applies).

    A tier for more credits never gives less off than one for fewer (clean(), with
    billing.pricing.tier_order_problem), so buying more never costs more per credit.
    """

    min_credits = models.PositiveIntegerField(
        unique=True, error_messages={"unique": "There is already a bulk discount tier from this number of credits."}
    )
    percent = models.DecimalField(max_digits=5, decimal_places=2)

    class Meta:
        ordering = ["min_credits"]
        constraints = [
            models.CheckConstraint(
                condition=Q(percent__gt=0, percent__lt=100),
                name="billing_tier_percent_range",
                violation_error_message="A bulk discount is a percentage above 0 and below 100.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.percent}% from {self.min_credits} credits"

    def clean(self) -> None:
        if self.min_credits is None or self.percent is None:
            return
        others = BulkDiscountTier.objects.exclude(pk=self.pk).exclude(min_credits=self.min_credits)
        tiers = [TierRule(tier.min_credits, tier.percent) for tier in others]
        problem = tier_order_problem([*tiers, TierRule(self.min_credits, self.percent)])
        if problem:
            raise ValidationError(problem)


class Promotion(models.Model):
    """A code with a percentage off or bonus credits, a validity window, a cap, once per organization."""

    code = models.CharField(max_length=40, help_text="Matched without regard to case.")
    description = models.CharField(max_length=200, blank=True)
    percent_off = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    bonus_credits = models.PositiveIntegerField(null=True, blank=True)
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Empty: no end.")
    max_redemptions = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no limit.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                Upper("code"),
                name="billing_promotion_code_ci_unique",
                violation_error_message="A promotion with this code already exists (codes are matched without regard "
                "to case).",
            ),
            models.CheckConstraint(
                condition=(
                    Q(percent_off__isnull=False, bonus_credits__isnull=True, percent_off__gt=0, percent_off__lt=100)
                    | Q(percent_off__isnull=True, bonus_credits__isnull=False, bonus_credits__gte=1)
                ),
                name="billing_promotion_one_benefit",
                violation_error_message=(
                    "Give a promotion exactly one benefit: either a percentage off (above 0 and below 100) "
                    "or bonus credits (1 or more), and leave the other empty."
                ),
            ),
            models.CheckConstraint(
                condition=Q(ends_at__isnull=True) | Q(ends_at__gt=F("starts_at")),
                name="billing_promotion_window",
                violation_error_message="A promotion must end after it starts (leave the end empty for no end).",
            ),
        ]

    def __str__(self) -> str:
        return self.code


class Quote(models.Model):
    """A price we promised an organization, valid for 30 minutes, used by at most one purchase."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        USED = "used", "Used"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="quotes")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    package = models.ForeignKey(CreditPackage, null=True, blank=True, on_delete=models.PROTECT)
    promotion = models.ForeignKey(Promotion, null=True, blank=True, on_delete=models.PROTECT)
    credits = models.PositiveIntegerField()
    bonus_credits = models.PositiveIntegerField(default=0)
    subtotal = models.DecimalField(max_digits=12, decimal_places=2)
    discounts = models.JSONField(default=list, blank=True, help_text='[{"kind", "label", "amount"}]')
    total = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="usd")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="billing_quote_org_created")]
        constraints = [
            models.CheckConstraint(condition=Q(credits__gte=1), name="billing_quote_credits_positive"),
            models.CheckConstraint(condition=Q(total__gte=0, subtotal__gte=F("total")), name="billing_quote_total"),
        ]

    def __str__(self) -> str:
        return f"Quote {self.id} ({self.credits} credits, ${self.total})"

    @property
    def total_credits(self) -> int:
        return self.credits + self.bonus_credits

    def is_expired(self, now=None) -> bool:
        return (now or timezone.now()) >= self.expires_at


class Provider(models.TextChoices):
    STRIPE = "stripe", "Stripe"
    PAYPAL = "paypal", "PayPal"
    SANDBOX = "sandbox", "Sandbox (demo)"


class Purchase(models.Model):
    """Money paid (or being paid) for credits: a quote's checkout, or a subscription invoice."""

    class Kind(models.TextChoices):
        CREDITS = "credits", "Credit purchase"
        SUBSCRIPTION = "subscription", "Subscription payment"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        COMPLETED = "completed", "Completed"
        EXPIRED = "expired", "Expired"
        FAILED = "failed", "Failed"
        REFUNDED = "refunded", "Refunded"
        PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="purchases")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CREDITS)
    provider = models.CharField(max_length=16, choices=Provider.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    quote = models.OneToOneField(Quote, null=True, blank=True, on_delete=models.PROTECT, related_name="purchase")
    plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.PROTECT, to_field="code")
    credits = models.PositiveIntegerField(help_text="Credits granted when completed (bonus included).")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="usd")
    provider_reference = models.CharField(
        max_length=255, help_text="Stripe Checkout Session or invoice id, PayPal order id, sandbox id."
    )
    provider_payment_id = models.CharField(
        max_length=255, blank=True, help_text="Stripe PaymentIntent or PayPal capture id, once paid."
    )
    ledger_transaction = models.ForeignKey(
        "credits.Transaction", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    refunded_amount = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0.00"))
    credits_reclaimed = models.PositiveIntegerField(default=0)
    credits_shortfall = models.PositiveIntegerField(
        default=0, help_text="Refunded credits already spent beyond the overdraft limit: for staff to follow up."
    )
    note = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    receipt_emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="billing_purchase_org_created"),
            models.Index(fields=["provider_payment_id"], name="billing_purchase_payment_id"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_reference"], name="billing_purchase_reference_unique"
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="billing_purchase_amount_nonneg"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0, refunded_amount__lte=F("amount")),
                name="billing_purchase_refund_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.credits} credits, ${self.amount})"

    @property
    def is_completed(self) -> bool:
        return self.completed_at is not None


class PromotionRedemption(models.Model):
    """A promotion used by an organization: at most once each, the database enforcing it."""

    promotion = models.ForeignKey(Promotion, on_delete=models.PROTECT, related_name="redemptions")
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    purchase = models.OneToOneField(
        Purchase, null=True, blank=True, on_delete=models.SET_NULL, related_name="promotion_redemption"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "promotion"], name="billing_redemption_once_per_org"),
        ]

    def __str__(self) -> str:
        return f"{self.promotion} by {self.organization}"


class Subscription(models.Model):
    """An organization's paid plan subscription (Stripe, or the demo sandbox)."""

    class Status(models.TextChoices):
        INCOMPLETE = "incomplete", "Incomplete"
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Past due"
        CANCELED = "canceled", "Canceled"

    organization = models.OneToOneField("accounts.Organization", on_delete=models.CASCADE, related_name="subscription")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, to_field="code", related_name="subscriptions")
    provider = models.CharField(max_length=16, choices=Provider.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.INCOMPLETE)
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    stripe_subscription_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["incomplete", "active", "past_due", "canceled"]),
                name="billing_subscription_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organization} on {self.plan_id} ({self.status})"

    @property
    def is_live(self) -> bool:
        return self.status in {self.Status.ACTIVE, self.Status.PAST_DUE}


class Dispute(models.Model):
    """A disputed charge: opened by Stripe (a chargeback) or by a customer from the portal."""

    class Source(models.TextChoices):
        STRIPE = "stripe", "Stripe chargeback"
        CUSTOMER = "customer", "Customer"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="disputes")
    purchase = models.ForeignKey(Purchase, null=True, blank=True, on_delete=models.PROTECT, related_name="disputes")
    source = models.CharField(max_length=16, choices=Source.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    stripe_dispute_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    reason = models.TextField()
    amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution = models.TextField(blank=True)
    credits_refunded = models.PositiveIntegerField(default=0)
    # A Stripe chargeback closed as lost: the money the bank took back, whose share of the
    # purchase's credits is taken back as a refund's would be (billing.services).
    money_lost = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=["open", "resolved"]), name="billing_dispute_status_valid"),
        ]

    def __str__(self) -> str:
        return f"Dispute #{self.pk} ({self.get_source_display()}, {self.status})"
