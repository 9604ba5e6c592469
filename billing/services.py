"""Billing's writes: plan changes, quotes, purchases, subscriptions, refunds and disputes.

Money in becomes credits in exactly one place, `complete_purchase`: it locks the purchase
row, grants the credits of OUR stored quote (never what a client or a provider's metadata
claims) with the provider's idempotency key, and marks the purchase completed. Whatever
order and however often Stripe, PayPal or a customer's browser report a payment, the
second report finds the purchase completed (or the ledger key used) and grants nothing.

Calls to Stripe and PayPal never run inside a database transaction: a purchase is first
reserved (committed), then the provider is called, then the provider's reference is stored.
"""

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone

from accounts.models import Organization
from billing import pricing, selectors
from billing.errors import (
    AlreadyOnPlan,
    AmountTooSmall,
    DisputeAlreadyOpen,
    DisputeNotOpen,
    DisputeReasonTooLong,
    DisputeRefundTooLarge,
    InvalidCreditAmount,
    NoSubscription,
    PaymentNotRecorded,
    PromotionAlreadyRedeemed,
    PromotionExhausted,
    PromotionInvalid,
    PromotionNotActive,
    ProviderUnavailable,
    PurchaseNotFound,
    QuoteExpired,
    QuoteNotFound,
    QuoteUsed,
    SandboxDisabled,
    UnknownPackage,
    UnknownPlan,
)
from billing.models import (
    BulkDiscountTier,
    CreditPackage,
    Dispute,
    Plan,
    Promotion,
    PromotionRedemption,
    Provider,
    Purchase,
    Quote,
    Subscription,
)
from core.audit import record_audit
from core.effects import delay_on_commit
from core.outbox import record_changes
from credits import services as credit_services
from credits import system_accounts
from credits.models import Transaction
from credits.selectors import get_balance

logger = logging.getLogger(__name__)

MIN_CARD_TOTAL = Decimal("0.50")
# What a customer may write when disputing a charge (the portal's form says the same).
MAX_DISPUTE_REASON_LENGTH = 2000


# --- Plans ---------------------------------------------------------------------------


@transaction.atomic
def change_plan(*, organization: Organization, plan_code: str, actor: Any = None) -> Organization:
    """Put the organization on the active plan `plan_code`.

    The plan's quotas apply at once; the wallet's version grows so Redis shows the new
    `plan` (never overwritten by an older hash), and an audit row records the change.
    Changing to the current plan changes nothing.
    """
    plan = Plan.objects.filter(code=plan_code, is_active=True).first() if isinstance(plan_code, str) else None
    if plan is None:
        raise UnknownPlan(f"There is no active plan with the code {plan_code!r}.")
    organization = Organization.objects.select_for_update().get(pk=organization.pk)
    old_code = organization.plan_id
    if old_code == plan.code:
        return organization
    organization.plan = plan
    organization.save(update_fields=["plan"])
    credit_services.bump_wallet_version(organization=organization)
    record_changes("org", [organization.pk])
    record_audit(
        event="plan_changed",
        actor=actor,
        organization=organization,
        target=f"org:{organization.pk}",
        old={"plan": old_code},
        new={"plan": plan.code},
    )
    return organization


# --- Providers -------------------------------------------------------------------------


def stripe_configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def paypal_configured() -> bool:
    return bool(settings.PAYPAL_CLIENT_ID and settings.PAYPAL_CLIENT_SECRET)


def sandbox_allowed() -> bool:
    """The demo provider: only with DEBUG on and no real payment provider configured."""
    return bool(settings.DEBUG) and not stripe_configured() and not paypal_configured()


def available_providers() -> list[str]:
    providers = []
    if stripe_configured():
        providers.append(Provider.STRIPE.value)
    if paypal_configured():
        providers.append(Provider.PAYPAL.value)
    if sandbox_allowed():
        providers.append(Provider.SANDBOX.value)
    return providers


def ensure_provider(provider: str) -> None:
    if provider == Provider.SANDBOX:
        if not sandbox_allowed():
            raise SandboxDisabled()
    elif provider == Provider.STRIPE:
        if not stripe_configured():
            raise ProviderUnavailable("Stripe is not configured on this server.")
    elif provider == Provider.PAYPAL:
        if not paypal_configured():
            raise ProviderUnavailable("PayPal is not configured on this server.")
    else:
        raise ProviderUnavailable(f"Unknown payment provider {provider!r}.")


# --- Quotes ----------------------------------------------------------------------------


def find_promotion(code: str) -> Promotion:
    promotion = Promotion.objects.filter(code__iexact=code.strip()).first()
    if promotion is None:
        raise PromotionInvalid(f"The promotion code {code.strip()!r} does not exist.")
    return promotion


def check_promotion(*, promotion: Promotion, organization: Organization, now=None) -> None:
    """Raise unless the organization may redeem the promotion now."""
    now = now or timezone.now()
    if not promotion.active or now < promotion.starts_at or (promotion.ends_at and now >= promotion.ends_at):
        raise PromotionNotActive(f"The promotion code {promotion.code} is not valid at this time.")
    if PromotionRedemption.objects.filter(promotion=promotion, organization=organization).exists():
        raise PromotionAlreadyRedeemed()
    if (
        promotion.max_redemptions is not None
        and PromotionRedemption.objects.filter(promotion=promotion).count() >= promotion.max_redemptions
    ):
        raise PromotionExhausted()


def price_for(
    *, organization: Organization, credits: int, package: CreditPackage | None, promotion: Promotion | None
) -> pricing.Breakdown:
    plan = organization.plan
    tiers = [pricing.TierRule(t.min_credits, t.percent) for t in BulkDiscountTier.objects.all()]
    promo = (
        pricing.PromotionRule(promotion.code.upper(), promotion.percent_off, promotion.bonus_credits)
        if promotion
        else None
    )
    return pricing.compute_breakdown(
        credits=credits,
        base_rate=Decimal(settings.CREDIT_BASE_RATE),
        package_price=package.price if package else None,
        tiers=tiers,
        plan_name=plan.name,
        subscriber_percent=plan.subscriber_discount_percent,
        promotion=promo,
    )


def create_quote(
    *,
    organization: Organization,
    credits: int | None = None,
    package_id: int | None = None,
    promo_code: str | None = None,
    actor: Any = None,
) -> Quote:
    """Price `credits` (or the pack `package_id`) for the organization and keep the price for 30 minutes."""
    package = None
    if package_id is not None:
        package = CreditPackage.objects.filter(pk=package_id, active=True).first()
        if package is None:
            raise UnknownPackage()
        credits = package.credits
    elif (
        not isinstance(credits, int)
        or isinstance(credits, bool)
        or not settings.BILLING_MIN_CUSTOM_CREDITS <= credits <= settings.BILLING_MAX_CUSTOM_CREDITS
    ):
        raise InvalidCreditAmount(
            f"Buy from {settings.BILLING_MIN_CUSTOM_CREDITS:,} to {settings.BILLING_MAX_CUSTOM_CREDITS:,} credits."
        )
    promotion = None
    if promo_code and promo_code.strip():
        promotion = find_promotion(promo_code)
        check_promotion(promotion=promotion, organization=organization)
    organization = Organization.objects.select_related("plan").get(pk=organization.pk)
    breakdown = price_for(organization=organization, credits=credits, package=package, promotion=promotion)
    now = timezone.now()
    return Quote.objects.create(
        organization=organization,
        created_by=actor if getattr(actor, "pk", None) else None,
        package=package,
        promotion=promotion,
        credits=breakdown.credits,
        bonus_credits=breakdown.bonus_credits,
        subtotal=breakdown.subtotal,
        discounts=breakdown.discounts,
        total=breakdown.total,
        currency=settings.CURRENCY,
        created_at=now,
        expires_at=now + timedelta(minutes=settings.BILLING_QUOTE_TTL_MINUTES),
    )


# --- Purchases -------------------------------------------------------------------------


@dataclass
class PurchaseStart:
    purchase: Purchase
    checkout_url: str | None = None
    remaining_credits: int | None = None


def _reserve_purchase(*, organization: Organization, quote_id: Any, provider: str, actor: Any) -> Purchase:
    """Turn an open quote into a pending purchase (one per quote) and reserve its promotion."""
    try:
        quote_uuid = uuid.UUID(str(quote_id))
    except ValueError as exc:
        raise QuoteNotFound() from exc
    quote = Quote.objects.select_for_update().filter(pk=quote_uuid, organization=organization).first()
    if quote is None:
        raise QuoteNotFound()
    if quote.status != Quote.Status.OPEN:
        raise QuoteUsed()
    if quote.is_expired():
        raise QuoteExpired()
    if provider != Provider.SANDBOX and quote.total < MIN_CARD_TOTAL:
        raise AmountTooSmall()
    purchase = Purchase.objects.create(
        organization=organization,
        kind=Purchase.Kind.CREDITS,
        provider=provider,
        quote=quote,
        credits=quote.total_credits,
        amount=quote.total,
        currency=quote.currency,
        provider_reference=f"pending:{uuid.uuid4()}",
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    if quote.promotion_id:
        promotion = Promotion.objects.select_for_update().get(pk=quote.promotion_id)
        check_promotion(promotion=promotion, organization=organization)
        try:
            with transaction.atomic():
                PromotionRedemption.objects.create(promotion=promotion, organization=organization, purchase=purchase)
        except IntegrityError as exc:
            raise PromotionAlreadyRedeemed() from exc
    quote.status = Quote.Status.USED
    quote.save(update_fields=["status"])
    return purchase


@transaction.atomic
def _set_provider_reference(*, purchase_id: int, reference: str) -> None:
    Purchase.objects.filter(pk=purchase_id).update(provider_reference=reference)


@transaction.atomic
def release_purchase(*, purchase_id: int, status: str, note: str = "") -> Purchase | None:
    """A pending purchase that will not be paid (checkout expired, failed or canceled): free its promotion.

    If its payment completes after all, `complete_purchase` still grants it and takes the
    promotion again when the promotion allows it.
    """
    purchase = Purchase.objects.select_for_update().filter(pk=purchase_id).first()
    if purchase is None or purchase.status != Purchase.Status.PENDING:
        return purchase
    purchase.status = status
    purchase.note = note[:500]
    purchase.save(update_fields=["status", "note"])
    PromotionRedemption.objects.filter(purchase=purchase).delete()
    return purchase


def start_purchase(*, organization: Organization, quote_id: Any, provider: str, actor: Any = None) -> PurchaseStart:
    """Start paying a quote: a checkout URL for Stripe and PayPal, an instant grant for the sandbox."""
    ensure_provider(provider)
    if provider == Provider.SANDBOX:
        with transaction.atomic():
            purchase = _reserve_purchase(organization=organization, quote_id=quote_id, provider=provider, actor=actor)
            purchase.provider_reference = f"sandbox_{uuid.uuid4().hex}"
            purchase.save(update_fields=["provider_reference"])
            purchase = complete_purchase(
                purchase_id=purchase.pk,
                payment_id=purchase.provider_reference,
                amount_paid=purchase.amount,
                currency=purchase.currency,
                idempotency_key=f"sandbox:purchase:{purchase.pk}",
            )
        return PurchaseStart(purchase=purchase, remaining_credits=get_balance(organization_id=organization.pk))

    with transaction.atomic():
        purchase = _reserve_purchase(organization=organization, quote_id=quote_id, provider=provider, actor=actor)
    try:
        if provider == Provider.STRIPE:
            from billing import stripe_gateway

            reference, url = stripe_gateway.create_purchase_checkout(purchase=purchase)
        else:
            from billing import paypal

            reference, url = paypal.create_order(purchase=purchase)
    except Exception:
        release_purchase(purchase_id=purchase.pk, status=Purchase.Status.FAILED, note="The provider call failed.")
        raise
    _set_provider_reference(purchase_id=purchase.pk, reference=reference)
    purchase.provider_reference = reference
    return PurchaseStart(purchase=purchase, checkout_url=url)


def release_canceled_checkout(
    *, organization: Organization, purchase_id: int | None = None, paypal_order_id: str = ""
) -> Purchase | None:
    """The customer came back from Stripe's or PayPal's page with "cancel": release the
    pending purchase (so its promotion code can be used again), but only once the provider
    says it cannot be paid any more. A Stripe Checkout Session is expired first (refused
    when it was completed meanwhile); a PayPal order must never have been approved.

    Returns the purchase, released or not (its status tells), or None when there is none.
    """
    purchases = Purchase.objects.filter(organization=organization, kind=Purchase.Kind.CREDITS)
    if purchase_id is not None:
        purchase = purchases.filter(pk=purchase_id, provider=Provider.STRIPE).first()
    elif paypal_order_id:
        purchase = purchases.filter(provider=Provider.PAYPAL, provider_reference=paypal_order_id).first()
    else:
        return None
    if purchase is None or purchase.status != Purchase.Status.PENDING:
        return purchase
    if purchase.provider_reference.startswith("pending:"):
        return purchase  # the provider's reference is not stored yet: nothing to ask the provider about
    if purchase.provider == Provider.STRIPE:
        from billing import stripe_gateway

        unpayable = stripe_gateway.expire_purchase_checkout(session_id=purchase.provider_reference)
    else:
        from billing import paypal

        unpayable = paypal.order_is_unapproved(order_id=purchase.provider_reference)
    if not unpayable:
        return purchase
    return release_purchase(
        purchase_id=purchase.pk, status=Purchase.Status.EXPIRED, note="Canceled by the customer at the provider."
    )


@transaction.atomic
def complete_purchase(
    *,
    purchase_id: int,
    payment_id: str,
    amount_paid: Decimal,
    currency: str,
    idempotency_key: str,
) -> Purchase:
    """Grant a paid purchase's credits, exactly once.

    The purchase row is locked, so concurrent reports of one payment (a webhook and the
    customer's return, a retried delivery) queue here; the later ones find it completed.
    A payment whose amount or currency differs from our price grants nothing and is marked
    failed for staff to look at.

    A purchase released before its payment arrived (expired after a day, its checkout
    expired) was paid all the same: its credits are granted, but its promotion was freed
    on release, so it is taken again (`_retake_promotion`). When the promotion no longer
    allows it (used up, used since by the organization, switched off), a bonus is not
    granted and the purchase's credits and note say so; a percentage off was already paid
    at the lower price, so only the note and the audit log record it for staff.
    """
    purchase = (
        Purchase.objects.select_for_update(of=("self",)).select_related("quote", "organization").get(pk=purchase_id)
    )
    if purchase.completed_at is not None:
        return purchase
    if money_differs(amount_paid, purchase.amount) or (currency or "").lower() != purchase.currency:
        purchase.status = Purchase.Status.FAILED
        purchase.note = f"Paid {amount_paid} {currency}, expected {purchase.amount} {purchase.currency}: not granted."
        purchase.provider_payment_id = payment_id
        purchase.save(update_fields=["status", "note", "provider_payment_id"])
        logger.error("purchase %s: payment %s amount mismatch", purchase.pk, payment_id)
        return purchase
    quote = purchase.quote
    source = system_accounts.PURCHASE_BY_PROVIDER[purchase.provider]
    purchased = quote.credits if quote else purchase.credits
    bonus = quote.bonus_credits if quote else 0
    if purchase.status != Purchase.Status.PENDING:
        purchase.note = (
            "Paid after it had expired."
            if purchase.status == Purchase.Status.EXPIRED
            else f"Paid after it was marked {purchase.get_status_display().lower()}."
        )
        if quote and quote.promotion_id and not _retake_promotion(purchase, quote):
            bonus = 0
        purchase.credits = purchased + bonus
    metadata = {"purchaseId": purchase.pk, "provider": purchase.provider, "paymentId": payment_id}
    if quote:
        metadata["quoteId"] = str(quote.pk)
    txn = credit_services.grant_credits(
        organization=purchase.organization,
        amount=purchased,
        source=source,
        kind=Transaction.Kind.PURCHASE,
        reason=f"Purchase #{purchase.pk}: {purchased:,} credits",
        idempotency_key=idempotency_key,
        metadata=metadata,
    )
    if bonus:
        credit_services.grant_credits(
            organization=purchase.organization,
            amount=bonus,
            source=system_accounts.PROMOTION_GRANTS,
            kind=Transaction.Kind.PROMOTION,
            reason=f"Purchase #{purchase.pk}: promotion bonus",
            idempotency_key=f"{idempotency_key}:bonus",
            metadata=metadata,
        )
    purchase.status = Purchase.Status.COMPLETED
    purchase.completed_at = timezone.now()
    purchase.provider_payment_id = payment_id
    purchase.ledger_transaction = txn
    purchase.save(
        update_fields=["status", "completed_at", "provider_payment_id", "ledger_transaction", "credits", "note"]
    )
    from billing import tasks

    delay_on_commit(tasks.send_payment_confirmation, purchase.pk)
    return purchase


def _retake_promotion(purchase: Purchase, quote: Quote) -> bool:
    """Redeem again the promotion a released purchase freed, if the promotion still allows it.

    The rules are those of a new purchase (`check_promotion`), the validity window taken
    at the time the purchase was started (the price was promised then). Appends the outcome
    to the purchase's note; the caller saves it. False when the promotion is not redeemed.
    """
    promotion = Promotion.objects.select_for_update().get(pk=quote.promotion_id)
    if PromotionRedemption.objects.filter(purchase=purchase).exists():
        return True  # marked failed without being released: it kept its redemption
    try:
        check_promotion(promotion=promotion, organization=purchase.organization, now=purchase.created_at)
        with transaction.atomic():
            PromotionRedemption.objects.create(
                promotion=promotion, organization=purchase.organization, purchase=purchase
            )
    except (PromotionNotActive, PromotionAlreadyRedeemed, PromotionExhausted, IntegrityError) as exc:
        refused = getattr(exc, "message", PromotionAlreadyRedeemed.default_message)
        if quote.bonus_credits:
            outcome = f"Granted without the {quote.bonus_credits:,} bonus credits of {promotion.code}"
        else:
            outcome = f"Paid at the {promotion.code} discount, which could not be redeemed again"
        purchase.note = f"{purchase.note} {outcome}: {refused}"[:500]
        record_audit(
            event="promotion_not_redeemed",
            organization=purchase.organization,
            target=f"purchase:{purchase.pk}",
            new={"promotion": promotion.code, "reason": refused, "bonusCredits": quote.bonus_credits},
        )
        return False
    purchase.note = f"{purchase.note} {promotion.code} redeemed again."[:500]
    return True


def money_differs(paid: Decimal, expected: Decimal) -> bool:
    return pricing.money(Decimal(paid)) != pricing.money(Decimal(expected))


# --- Stripe events (called by the dj-stripe receivers, inside their transaction) ---------


def _stripe_id(value: Any) -> str:
    if isinstance(value, dict):
        return value.get("id") or ""
    return value or ""


def _from_timestamp(value: Any, tz=UTC) -> datetime:
    return datetime.fromtimestamp(int(value), tz=tz)


def _cents(value: Any) -> Decimal:
    return (Decimal(int(value or 0)) / 100).quantize(pricing.CENT)


@transaction.atomic
def record_stripe_checkout_completed(*, session: dict) -> Purchase | Subscription | None:
    """`checkout.session.completed`: a paid one-off purchase, or a new subscription."""
    if session.get("mode") == "subscription":
        return _record_subscription_checkout(session=session)
    if session.get("payment_status") not in {"paid", "no_payment_required"}:
        return None  # asynchronous payment methods: `checkout.session.async_payment_succeeded` follows
    purchase = _purchase_for_session(session)
    if purchase is None:
        return None
    return complete_purchase(
        purchase_id=purchase.pk,
        payment_id=_stripe_id(session.get("payment_intent")) or session["id"],
        amount_paid=_cents(session.get("amount_total")),
        currency=session.get("currency") or "",
        idempotency_key=f"stripe:checkout:{session['id']}",
    )


def _purchase_for_session(session: dict) -> Purchase | None:
    """Our purchase paid by the session; None for a session that is not ours (another system's on
    the same Stripe account): our purchase exists before its session, so a retry would not find it."""
    purchase = Purchase.objects.filter(provider=Provider.STRIPE, provider_reference=session["id"]).first()
    if purchase is None:
        # The session was created but its id not yet stored (the customer paid within
        # milliseconds); our purchase id is in the metadata we set, and only used to find it.
        purchase_id = (session.get("metadata") or {}).get("purchase_id")
        purchase = (
            Purchase.objects.filter(
                pk=int(purchase_id), provider=Provider.STRIPE, provider_reference__startswith="pending:"
            ).first()
            if str(purchase_id or "").isdigit()
            else None
        )
        if purchase is None:
            logger.warning("ignoring Stripe Checkout Session %s: no purchase of ours", session["id"])
            return None
        Purchase.objects.filter(pk=purchase.pk).update(provider_reference=session["id"])
    return purchase


@transaction.atomic
def record_stripe_checkout_expired(*, session: dict) -> None:
    purchase = Purchase.objects.filter(provider=Provider.STRIPE, provider_reference=session.get("id")).first()
    if purchase is not None:
        release_purchase(purchase_id=purchase.pk, status=Purchase.Status.EXPIRED, note="Checkout expired.")


def _record_subscription_checkout(*, session: dict) -> Subscription | None:
    metadata = session.get("metadata") or {}
    organization = _organization_from(session.get("client_reference_id") or metadata.get("organization_id"))
    plan = Plan.objects.filter(code=metadata.get("plan", "")).first()
    if organization is None or plan is None:
        logger.warning("subscription checkout %s without our organization or plan", session.get("id"))
        return None
    return _upsert_subscription(
        organization=organization,
        plan=plan,
        stripe_subscription_id=_stripe_id(session.get("subscription")),
        stripe_customer_id=_stripe_id(session.get("customer")),
        status=Subscription.Status.ACTIVE,
    )


def _organization_from(value: Any) -> Organization | None:
    text = str(value or "")
    return Organization.objects.filter(pk=int(text)).first() if text.isdigit() else None


def _is_about_current_subscription(
    local: Subscription | None, *, stripe_subscription_id: str, status: str | None, period_end
) -> bool:
    """Whether an event about the Stripe subscription `stripe_subscription_id` may change the
    organization's subscription row `local`, which holds its one current subscription.

    Stripe sends events late and out of order. The row's own subscription follows its events,
    except that a canceled one stays canceled and an event about an older period than the
    row's changes nothing. Another subscription takes the row's place only when the event
    shows it running in a later period than the row's: a subscription started after the
    current one, not a late event of an older one. An ended subscription that is not the
    current one changes nothing. A checkout has no period: it changes the row only while the
    organization has had no Stripe subscription; after one, the new subscription's own events
    (its first invoice, `customer.subscription.*`) make it current.
    """
    if local is None:
        return True
    canceling = status == Subscription.Status.CANCELED
    if local.stripe_subscription_id and local.stripe_subscription_id == stripe_subscription_id:
        if local.status == Subscription.Status.CANCELED:
            return False
        if local.is_live and status == Subscription.Status.INCOMPLETE:
            return False  # a late `customer.subscription.created`: a subscription never goes back to incomplete
        if canceling or period_end is None or local.current_period_end is None:
            return True
        return period_end >= local.current_period_end
    if canceling:
        return False
    if not local.stripe_subscription_id and not local.is_live:
        return True
    return period_end is not None and (local.current_period_end is None or period_end > local.current_period_end)


def _upsert_subscription(
    *,
    organization: Organization,
    plan: Plan,
    stripe_subscription_id: str,
    stripe_customer_id: str = "",
    status: str | None = None,
    current_period_end=None,
    cancel_at_period_end: bool | None = None,
) -> Subscription | None:
    """Apply a Stripe event to the organization's subscription and plan; None (changing nothing)
    when the event is not about its current subscription (`_is_about_current_subscription`)."""
    subscription = Subscription.objects.select_for_update().filter(organization=organization).first()
    if not _is_about_current_subscription(
        subscription, stripe_subscription_id=stripe_subscription_id, status=status, period_end=current_period_end
    ):
        logger.info(
            "ignoring Stripe subscription %s for organization %s: not its current subscription or an older event",
            stripe_subscription_id,
            organization.pk,
        )
        return None
    if subscription is None:
        subscription = Subscription.objects.create(
            organization=organization,
            plan=plan,
            provider=Provider.STRIPE,
            stripe_subscription_id=stripe_subscription_id or None,
        )
    old_plan = subscription.plan_id
    subscription.plan = plan
    subscription.provider = Provider.STRIPE
    if stripe_subscription_id:
        subscription.stripe_subscription_id = stripe_subscription_id
    if stripe_customer_id:
        subscription.stripe_customer_id = stripe_customer_id
    if status:
        subscription.status = status
    if current_period_end is not None:
        subscription.current_period_end = current_period_end
    if cancel_at_period_end is not None:
        subscription.cancel_at_period_end = cancel_at_period_end
    subscription.save()
    if subscription.is_live:
        change_plan(organization=organization, plan_code=plan.code)
    elif subscription.status == Subscription.Status.CANCELED and old_plan:
        change_plan(organization=organization, plan_code="free")
    return subscription


def _invoice_subscription_details(invoice: dict) -> tuple[str, dict]:
    """The subscription id and its metadata, from the current (`parent`) or the older invoice shape."""
    parent = (invoice.get("parent") or {}).get("subscription_details") or {}
    subscription_id = _stripe_id(parent.get("subscription")) or _stripe_id(invoice.get("subscription"))
    metadata = parent.get("metadata") or (invoice.get("subscription_details") or {}).get("metadata") or {}
    return subscription_id, metadata


def _line_price_id(line: dict) -> str:
    """The line's price: `pricing.price_details.price` now, `price` in API versions before 2025-03-31."""
    return _stripe_id(((line.get("pricing") or {}).get("price_details") or {}).get("price") or line.get("price"))


def _line_is_proration(line: dict) -> bool:
    """Now `parent.subscription_item_details.proration` (or `invoice_item_details`), before 2025-03-31 `proration`."""
    parent = line.get("parent") or {}
    details = parent.get("subscription_item_details") or parent.get("invoice_item_details") or {}
    return bool(details.get("proration") or line.get("proration"))


def _billed_lines(invoice: dict) -> list[dict]:
    """The lines that say what the invoice is paid for.

    A renewal after a plan change also carries the previous period's prorations (a negative
    "unused time on <old plan>" line among them): what it bills is its regular lines. An
    invoice of prorations only (a mid-period upgrade) bills the new plan's remaining time,
    its positive proration line.
    """
    lines = [
        line
        for line in (invoice.get("lines") or {}).get("data") or []
        if _line_price_id(line) and int(line.get("amount") or 0) >= 0
    ]
    return [line for line in lines if not _line_is_proration(line)] or lines


def _invoice_payment_reference(payment: dict) -> str:
    """An InvoicePayment's PaymentIntent, or its charge when it was paid without one."""
    details = payment.get("payment") or {}
    return _stripe_id(details.get("payment_intent")) or _stripe_id(details.get("charge"))


def _invoice_payment_id(invoice: dict) -> str:
    """The PaymentIntent (or charge) that paid the invoice, which a refund or a dispute names.

    Before API version 2025-03-31 the invoice had `payment_intent` and `charge`. Since then
    its payments are InvoicePayments: in `payments` when the invoice was sent with them (an
    includable field, absent from webhook events by default), and in the
    `invoice_payment.paid` event, which may come before or after `invoice.paid`; dj-stripe
    keeps every event it processed, so an earlier one is found there.
    """
    found = _stripe_id(invoice.get("payment_intent")) or _stripe_id(invoice.get("charge"))
    if found:
        return found
    payments = [p for p in (invoice.get("payments") or {}).get("data") or [] if p.get("status") == "paid"]
    if not payments and invoice.get("id"):
        from djstripe.models import Event

        events = Event.objects.filter(type="invoice_payment.paid", data__object__invoice=invoice["id"])
        payments = [event.data["object"] for event in events.order_by("created")]
    return next((ref for ref in map(_invoice_payment_reference, payments) if ref), "")


@transaction.atomic
def record_stripe_invoice_payment(*, invoice_payment: dict) -> Purchase | None:
    """`invoice_payment.paid`: note the PaymentIntent that paid a subscription invoice on its purchase.

    A refund or a chargeback of a subscription payment names that PaymentIntent (and since
    API version 2025-03-31 no longer the invoice). Before the invoice's own `invoice.paid`
    there is no purchase yet: the event is acknowledged, and `invoice.paid` reads it then.
    """
    if invoice_payment.get("status") != "paid":
        return None
    invoice_id = _stripe_id(invoice_payment.get("invoice"))
    reference = _invoice_payment_reference(invoice_payment)
    purchase = (
        Purchase.objects.select_for_update().filter(provider=Provider.STRIPE, provider_reference=invoice_id).first()
        if invoice_id
        else None
    )
    if purchase is None or not reference:
        logger.info("Stripe invoice payment %s: no purchase for invoice %s yet", invoice_payment.get("id"), invoice_id)
        return None
    if not purchase.provider_payment_id:
        purchase.provider_payment_id = reference
        purchase.save(update_fields=["provider_payment_id"])
    return purchase


@transaction.atomic
def record_stripe_invoice_paid(*, invoice: dict) -> Purchase | None:
    """`invoice.paid`: grant the period's credits of the subscribed plan, once per invoice.

    The plan is the one the invoice bills (`_billed_lines`), never a proration's: the renewal
    after a downgrade is the lower plan's. A proration-only invoice (a mid-period upgrade)
    grants the paid share of the new plan's monthly credits.

    An invoice of a canceled subscription, or of one that is not the organization's current
    subscription, changes neither the plan nor the subscription row and grants nothing; the
    purchase is still recorded (Stripe took the money) for a refund or a chargeback to find
    and for staff to see.
    """
    subscription_id, metadata = _invoice_subscription_details(invoice)
    if not subscription_id:
        return None
    subscription = Subscription.objects.filter(stripe_subscription_id=subscription_id).first()
    organization = subscription.organization if subscription else _organization_from(metadata.get("organization_id"))
    if organization is None:
        # Our subscriptions carry the organization in their metadata from the checkout on.
        logger.warning("ignoring Stripe invoice %s of subscription %s that is not ours", invoice["id"], subscription_id)
        return None
    billed = _billed_lines(invoice)
    plan = (
        Plan.objects.filter(stripe_price_id__in=[_line_price_id(line) for line in billed])
        .exclude(stripe_price_id="")
        .order_by("-monthly_price")
        .first()
        or Plan.objects.filter(code=metadata.get("plan", "")).first()
        or (subscription.plan if subscription else None)
    )
    if plan is None:
        raise PaymentNotRecorded(f"No plan for invoice {invoice.get('id')}.")
    period_end = None
    plan_lines = [line for line in billed if _line_price_id(line) == plan.stripe_price_id] or billed
    if plan_lines and (plan_lines[0].get("period") or {}).get("end"):
        period_end = _from_timestamp(int(plan_lines[0]["period"]["end"]))
    _upsert_subscription(
        organization=organization,
        plan=plan,
        stripe_subscription_id=subscription_id,
        stripe_customer_id=_stripe_id(invoice.get("customer")),
        status=Subscription.Status.ACTIVE,
        current_period_end=period_end,
    )
    local = Subscription.objects.filter(organization=organization).first()
    current = local is not None and local.stripe_subscription_id == subscription_id and local.is_live
    amount = _cents(invoice.get("amount_paid"))
    reason = invoice.get("billing_reason") or ""
    credits = plan.monthly_credits
    note = reason
    if not current:
        # Stripe took the money, so the purchase is recorded (a refund or a chargeback finds it),
        # but a canceled subscription, or one that is not the organization's, grants nothing.
        credits = 0
        note = f"{reason}: subscription {subscription_id} is canceled or not the organization's current one"
        logger.warning("Stripe invoice %s paid (%s): no credits granted", invoice["id"], note)
    elif reason == "subscription_update":
        # A mid-period upgrade is invoiced pro rata; its credits are the share of the new plan's month paid.
        credits = (
            min(plan.monthly_credits, int(plan.monthly_credits * amount / plan.monthly_price)) if plan.is_paid else 0
        )
    purchase, _ = Purchase.objects.get_or_create(
        provider=Provider.STRIPE,
        provider_reference=invoice["id"],
        defaults={
            "organization": organization,
            "kind": Purchase.Kind.SUBSCRIPTION,
            "plan": plan,
            "credits": credits,
            "amount": amount,
            "currency": (invoice.get("currency") or settings.CURRENCY).lower(),
            "note": note[:500],
        },
    )
    purchase = Purchase.objects.select_for_update().get(pk=purchase.pk)
    if purchase.completed_at is not None:
        return purchase
    txn = None
    if purchase.credits > 0:
        txn = credit_services.grant_credits(
            organization=organization,
            amount=purchase.credits,
            source=system_accounts.SUBSCRIPTION_GRANTS,
            kind=Transaction.Kind.SUBSCRIPTION_GRANT,
            reason=f"{plan.name} plan: {purchase.credits:,} credits",
            idempotency_key=f"stripe:invoice:{invoice['id']}",
            metadata={"purchaseId": purchase.pk, "invoiceId": invoice["id"], "plan": plan.code},
        )
    purchase.status = Purchase.Status.COMPLETED
    purchase.completed_at = timezone.now()
    purchase.provider_payment_id = _invoice_payment_id(invoice)
    purchase.ledger_transaction = txn
    purchase.save(update_fields=["status", "completed_at", "provider_payment_id", "ledger_transaction"])
    from billing import tasks

    if current:
        task = tasks.send_subscription_renewal if reason == "subscription_cycle" else tasks.send_payment_confirmation
        delay_on_commit(task, purchase.pk)
    return purchase


@transaction.atomic
def record_stripe_subscription(*, subscription: dict, deleted: bool = False) -> Subscription | None:
    """`customer.subscription.updated` / `.deleted`: status, plan, period end, cancellation.

    Only about the organization's current subscription: a late or older event, or one about
    another subscription, is logged and changes nothing (`_is_about_current_subscription`).
    """
    local = Subscription.objects.filter(stripe_subscription_id=subscription.get("id")).first()
    metadata = subscription.get("metadata") or {}
    organization = local.organization if local else _organization_from(metadata.get("organization_id"))
    if organization is None:
        logger.info("ignoring Stripe subscription %s that is not ours", subscription.get("id"))
        return None
    items = (subscription.get("items") or {}).get("data") or []
    price_ids = [_stripe_id(item.get("price")) for item in items]
    plan = (
        Plan.objects.filter(stripe_price_id__in=[p for p in price_ids if p]).first()
        or Plan.objects.filter(code=metadata.get("plan", "")).first()
        or (local.plan if local else None)
    )
    if plan is None:
        return None
    stripe_status = subscription.get("status")
    status = {
        "active": Subscription.Status.ACTIVE,
        "trialing": Subscription.Status.ACTIVE,
        "past_due": Subscription.Status.PAST_DUE,
        "unpaid": Subscription.Status.PAST_DUE,
        "canceled": Subscription.Status.CANCELED,
        "incomplete_expired": Subscription.Status.CANCELED,
    }.get(stripe_status, Subscription.Status.INCOMPLETE)
    if deleted:
        status = Subscription.Status.CANCELED
    period_end = subscription.get("current_period_end") or (items[0].get("current_period_end") if items else None)
    return _upsert_subscription(
        organization=organization,
        plan=plan,
        stripe_subscription_id=subscription.get("id", ""),
        stripe_customer_id=_stripe_id(subscription.get("customer")),
        status=status,
        current_period_end=_from_timestamp(int(period_end)) if period_end else None,
        cancel_at_period_end=bool(subscription.get("cancel_at_period_end")),
    )


def _never_granted(purchase: Purchase) -> bool:
    """A purchase whose payment arrived and was refused (it did not match the quote): nothing
    was or will be granted, so its refunds and disputes have nothing to take back."""
    return purchase.status == Purchase.Status.FAILED and bool(purchase.provider_payment_id)


def _purchase_for_charge(charge_or_dispute: dict, *, charge_id: str = "") -> Purchase | None:
    """The completed purchase a charge paid: by its PaymentIntent (or the charge itself, paid without
    one), as checkouts and invoice payments store them, or by its `invoice` (API versions before
    2025-03-31). None, logged, for a charge that is not ours or whose purchase granted nothing.

    A charge of ours whose payment is not recorded yet (a refund delivered before the payment's
    own event) raises PaymentNotRecorded, so Stripe delivers it again: it is ours when it carries
    our pending purchase's id (Stripe copies the PaymentIntent's metadata, which our checkout
    sets, to its charge) or is a charge of one of our subscription customers.
    """
    payment_intent = _stripe_id(charge_or_dispute.get("payment_intent"))
    invoice = _stripe_id(charge_or_dispute.get("invoice"))
    payment_ids = [payment_id for payment_id in (payment_intent, charge_id) if payment_id]
    purchase = None
    if payment_ids:
        purchase = Purchase.objects.filter(provider=Provider.STRIPE, provider_payment_id__in=payment_ids).first()
    if purchase is None and invoice:
        purchase = Purchase.objects.filter(provider=Provider.STRIPE, provider_reference=invoice).first()
    purchase_id = str((charge_or_dispute.get("metadata") or {}).get("purchase_id") or "")
    if purchase is None and re.fullmatch(r"[0-9]{1,18}", purchase_id):
        named = Purchase.objects.filter(pk=int(purchase_id), provider=Provider.STRIPE).first()
        # Only while its payment is unrecorded can this charge be the one that paid it: a charge
        # naming a purchase that another payment paid is someone else's (its metadata copied).
        if named is not None and not named.provider_payment_id:
            purchase = named
    if purchase is not None and purchase.completed_at is not None:
        return purchase
    customer = _stripe_id(charge_or_dispute.get("customer"))
    if (purchase is not None and not _never_granted(purchase)) or (
        purchase is None and customer and Subscription.objects.filter(stripe_customer_id=customer).exists()
    ):
        # Pending, or expired or failed before its payment arrived: a late payment still
        # completes it (complete_purchase), and this refund or dispute must apply after that.
        raise PaymentNotRecorded(f"No completed purchase for charge {charge_id or payment_intent} yet.")
    logger.warning(
        "ignoring Stripe charge %s: %s",
        charge_id or payment_intent,
        f"purchase #{purchase.pk} is {purchase.status}" if purchase else "no purchase of ours",
    )
    return None


@transaction.atomic
def record_stripe_refund(*, charge: dict) -> Purchase | None:
    """`charge.refunded`: take back the refunded share of the purchase's credits (`_record_refund`).

    The charge's `amount_refunded` is cumulative.
    """
    purchase = _purchase_for_charge(charge, charge_id=charge.get("id", ""))
    if purchase is None:
        return None
    return _record_refund(
        purchase,
        paid_cents=int(charge.get("amount") or 0),
        refunded_cents=int(charge.get("amount_refunded") or 0),
        reason=f"Refund of purchase #{purchase.pk}",
        key=f"stripe:refund:{charge.get('id')}",
        metadata={"purchaseId": purchase.pk, "chargeId": charge.get("id")},
    )


def _record_refund(
    purchase: Purchase, *, paid_cents: int, refunded_cents: int, reason: str, key: str, metadata: dict
) -> Purchase:
    """A provider's running total of the money refunded for a completed purchase: take back its share.

    Each report brings the reclaimed credits up to `credits x refunded / paid` (plus what
    that money now covers of the purchase's dispute payouts, see `_take_back_share`); an
    older or repeated report finds nothing left to take. What the customer already spent is
    taken down to the overdraft limit; the rest is recorded on the purchase
    (`credits_shortfall`) and in the audit log for staff. The ledger key is `key` and the
    refunded cents.
    """
    purchase = Purchase.objects.select_for_update().get(pk=purchase.pk)
    refunded_cents = min(refunded_cents, paid_cents)
    if paid_cents <= 0 or _cents(refunded_cents) <= purchase.refunded_amount:
        return purchase
    _take_back_share(
        purchase,
        money_back_cents=refunded_cents + _lost_to_chargebacks_cents(purchase),
        paid_cents=paid_cents,
        reason=reason,
        idempotency_key=f"{key}:{refunded_cents}",
        metadata=metadata,
    )
    purchase.refunded_amount = min(_cents(refunded_cents), purchase.amount)
    purchase.status = Purchase.Status.REFUNDED if refunded_cents >= paid_cents else Purchase.Status.PARTIALLY_REFUNDED
    purchase.save(update_fields=["refunded_amount", "status", "credits_reclaimed", "credits_shortfall"])
    return purchase


def _lost_to_chargebacks_cents(purchase: Purchase) -> int:
    lost = Dispute.objects.filter(purchase=purchase).aggregate(total=Sum("money_lost"))["total"]
    return pricing.cents(lost or Decimal("0"))


def _take_back_share(
    purchase: Purchase, *, money_back_cents: int, paid_cents: int, reason: str, idempotency_key: str, metadata: dict
) -> None:
    """Bring what was taken back of a locked purchase's credits up to the share of its money
    that went back (refunds and lost chargebacks together), `credits x back / paid`, plus
    the part of its disputes' credit payouts that this money now covers.

    Money back and dispute payouts both compensate the purchase, and together never for
    more than its credits (`selectors.get_dispute_refundable_credits` caps a payout the same
    way): what they exceed it by is taken back too. So a 200-credit purchase given 200
    credits back in a dispute and then refunded in full loses 400 credits, whichever order
    the two come in. `credits_reclaimed` plus `credits_shortfall` count both parts.

    What the customer already spent is taken down to the overdraft limit; the rest is
    recorded on the purchase (`credits_shortfall`) and in the audit log for staff. The
    caller saves the purchase.
    """
    share = purchase.credits * min(money_back_cents, paid_cents) // paid_cents
    given_back = Dispute.objects.filter(purchase=purchase).aggregate(total=Sum("credits_refunded"))["total"] or 0
    covered_payouts = max(0, share + given_back - purchase.credits)
    target = share + covered_payouts
    delta = target - purchase.credits_reclaimed - purchase.credits_shortfall
    if delta <= 0:
        return
    _, shortfall = credit_services.reclaim_credits(
        organization=purchase.organization,
        amount=delta,
        kind=Transaction.Kind.REFUND,
        source=system_accounts.REFUNDS,
        reason=reason,
        idempotency_key=idempotency_key,
        metadata={**metadata, "disputePayoutsCovered": covered_payouts} if covered_payouts else metadata,
    )
    purchase.credits_reclaimed += delta - shortfall
    purchase.credits_shortfall += shortfall
    if shortfall:
        record_audit(
            event="refund_shortfall",
            organization=purchase.organization,
            target=f"purchase:{purchase.pk}",
            new={"requested": delta, "shortfall": shortfall, **metadata},
        )


@transaction.atomic
def record_stripe_dispute(*, dispute: dict) -> Dispute | None:
    """`charge.dispute.created`: flag the organization with an open dispute for staff."""
    existing = Dispute.objects.filter(stripe_dispute_id=dispute["id"]).first()
    if existing is not None:
        return existing
    purchase = _purchase_for_charge(dispute, charge_id=_stripe_id(dispute.get("charge")))
    if purchase is None:
        return None
    try:
        with transaction.atomic():
            created = Dispute.objects.create(
                organization=purchase.organization,
                purchase=purchase,
                source=Dispute.Source.STRIPE,
                stripe_dispute_id=dispute["id"],
                reason=dispute.get("reason") or "chargeback",
                amount=_cents(dispute.get("amount")),
            )
    except IntegrityError:
        return Dispute.objects.get(stripe_dispute_id=dispute["id"])
    record_audit(
        event="dispute_opened",
        organization=purchase.organization,
        target=f"dispute:{created.pk}",
        new={"source": "stripe", "disputeId": dispute["id"], "purchase": purchase.pk},
    )
    return created


@transaction.atomic
def record_stripe_dispute_closed(*, dispute: dict) -> Dispute | None:
    """`charge.dispute.closed`: a chargeback Stripe has decided.

    Lost, the bank took the disputed money back: the purchase's credits are taken back in
    the same share as a refund's, counted together with the charge's refunds, once however
    often the event comes. An open dispute is resolved with the outcome; one staff resolved
    already keeps its resolution (what it gave back stays counted against the purchase).
    """
    found = record_stripe_dispute(dispute=dispute)
    if found is None:
        return None
    purchase = Purchase.objects.select_for_update().get(pk=found.purchase_id)
    found = Dispute.objects.select_for_update().get(pk=found.pk)
    status = dispute.get("status") or "closed"
    lost = _cents(dispute.get("amount")) if status == "lost" else Decimal("0.00")
    outcome = f"Closed by Stripe: {status}."
    changed = False
    if lost and not found.money_lost:
        changed = True
        found.money_lost = min(lost, purchase.amount)
        found.save(update_fields=["money_lost"])
        paid_cents = pricing.cents(purchase.amount)
        if paid_cents > 0:
            _take_back_share(
                purchase,
                money_back_cents=pricing.cents(purchase.refunded_amount) + _lost_to_chargebacks_cents(purchase),
                paid_cents=paid_cents,
                reason=f"Chargeback lost on purchase #{purchase.pk}",
                idempotency_key=f"stripe:dispute-lost:{dispute['id']}",
                metadata={"purchaseId": purchase.pk, "disputeId": dispute["id"]},
            )
            purchase.save(update_fields=["credits_reclaimed", "credits_shortfall"])
        outcome = f"Lost at Stripe: the bank took back {found.money_lost} {purchase.currency.upper()}."
    if found.status == Dispute.Status.OPEN:
        changed = True
        found.status = Dispute.Status.RESOLVED
        found.resolution = outcome
        found.resolved_at = timezone.now()
        found.save(update_fields=["status", "resolution", "resolved_at"])
    if changed:
        record_audit(
            event="dispute_closed",
            organization=found.organization,
            target=f"dispute:{found.pk}",
            new={"source": "stripe", "disputeId": dispute["id"], "status": status, "moneyLost": str(found.money_lost)},
        )
    return found


# --- PayPal ------------------------------------------------------------------------------


@transaction.atomic
def record_paypal_capture(*, order_id: str, capture_id: str, amount: Decimal, currency: str) -> Purchase | None:
    """A completed PayPal capture, from the customer's return or the webhook, whichever comes first."""
    purchase = Purchase.objects.filter(provider=Provider.PAYPAL, provider_reference=order_id).first()
    if purchase is None:
        logger.warning("PayPal capture %s for unknown order %s", capture_id, order_id)
        return None
    return complete_purchase(
        purchase_id=purchase.pk,
        payment_id=capture_id,
        amount_paid=amount,
        currency=currency,
        idempotency_key=f"paypal:capture:{capture_id}",
    )


@transaction.atomic
def record_paypal_refund(
    *, capture_id: str, refund_id: str, total_refunded: Decimal, currency: str, reversal: bool = False
) -> Purchase | None:
    """`PAYMENT.CAPTURE.REFUNDED` or `.REVERSED`: money of a capture went back to the payer.

    A refund (the merchant's) and a reversal (PayPal taking the money back, as a lost
    chargeback does) both come as a refund of the capture with PayPal's running total of
    what went back (`total_refunded`), reversals included; so both go through the refund
    path with that total (`_record_refund`): the purchase's credits are taken back in
    proportion, replays and older events take nothing more, and a reversal is not counted
    again as a chargeback. A reversal is also noted on the purchase and in the audit log.
    A refund of a capture whose completion is not recorded yet raises PaymentNotRecorded, so
    PayPal delivers it again (webhooks are per app: every capture is ours); one of a purchase
    that never granted anything is logged and left alone.
    """
    purchase = (
        Purchase.objects.select_for_update().filter(provider=Provider.PAYPAL, provider_payment_id=capture_id).first()
    )
    if purchase is None or (purchase.completed_at is None and not _never_granted(purchase)):
        raise PaymentNotRecorded(f"No completed purchase for PayPal capture {capture_id} yet.")
    if purchase.completed_at is None:
        logger.warning(
            "PayPal %s %s of capture %s: purchase #%s granted nothing",
            "reversal" if reversal else "refund",
            refund_id,
            capture_id,
            purchase.pk,
        )
        return None
    if (currency or "").lower() != purchase.currency:
        logger.error(
            "PayPal refund %s of purchase %s in %s, not %s: not applied",
            refund_id,
            purchase.pk,
            currency,
            purchase.currency,
        )
        return purchase
    what = "Reversal by PayPal" if reversal else "Refund"
    before = purchase.refunded_amount
    purchase = _record_refund(
        purchase,
        paid_cents=pricing.cents(purchase.amount),
        refunded_cents=pricing.cents(total_refunded),
        reason=f"{what} of purchase #{purchase.pk}",
        key=f"paypal:refund:{capture_id}",
        metadata={"purchaseId": purchase.pk, "captureId": capture_id, "refundId": refund_id},
    )
    if reversal and purchase.refunded_amount > before:
        purchase.note = (
            f"Reversed by PayPal ({refund_id}): {purchase.refunded_amount} {purchase.currency.upper()} "
            "taken back in total."
        )[:500]
        purchase.save(update_fields=["note"])
        record_audit(
            event="payment_reversed",
            organization=purchase.organization,
            target=f"purchase:{purchase.pk}",
            new={
                "source": "paypal",
                "captureId": capture_id,
                "refundId": refund_id,
                "refunded": str(purchase.refunded_amount),
            },
        )
    return purchase


# --- Subscriptions -------------------------------------------------------------------------


@dataclass
class SubscriptionChange:
    subscription: Subscription | None
    checkout_url: str | None = None


def change_subscription(
    *, organization: Organization, plan_code: str, provider: str | None = None, actor: Any = None
) -> SubscriptionChange:
    """Move the organization to `plan_code`.

    - `free`: a paid subscription is canceled at the end of its period (the plan changes then).
    - A live Stripe subscription: its price changes with proration (an upgrade is invoiced at
      once, a downgrade credits the next invoice); quotas and Redis follow at once.
    - Otherwise Stripe Checkout in subscription mode (the plan changes when it is paid), or,
      in the demo sandbox, at once with the plan's monthly credits.
    - The plan the organization is already on is refused (AlreadyOnPlan): subscribing again
      would charge and grant the month again. Only a Stripe subscription set to end at the
      period's end may choose its own plan again, which keeps it.
    """
    plan = Plan.objects.filter(code=plan_code, is_active=True).first() if isinstance(plan_code, str) else None
    if plan is None:
        raise UnknownPlan(f"There is no active plan with the code {plan_code!r}.")
    subscription = Subscription.objects.filter(organization=organization).first()
    live = subscription if subscription and subscription.is_live else None
    current = (
        live.plan_id if live else Organization.objects.filter(pk=organization.pk).values_list("plan", flat=True)[0]
    )
    if plan.code == current and not (live and live.cancel_at_period_end):
        raise AlreadyOnPlan(f"Your organization is already on the {plan.name} plan.")
    if not plan.is_paid:
        if live is not None:
            return SubscriptionChange(subscription=cancel_subscription(organization=organization, actor=actor))
        change_plan(organization=organization, plan_code=plan.code, actor=actor)
        return SubscriptionChange(subscription=subscription)
    if live is not None and live.provider == Provider.STRIPE:
        from billing import stripe_gateway

        old_plan = live.plan
        stripe_gateway.change_subscription_price(
            subscription=live, plan=plan, upgrade=plan.monthly_price > old_plan.monthly_price
        )
        with transaction.atomic():
            live = Subscription.objects.select_for_update().get(pk=live.pk)
            live.plan = plan
            live.cancel_at_period_end = False
            live.save(update_fields=["plan", "cancel_at_period_end", "updated_at"])
            change_plan(organization=organization, plan_code=plan.code, actor=actor)
        return SubscriptionChange(subscription=live)
    if provider is None:
        if stripe_configured():
            provider = Provider.STRIPE
        elif sandbox_allowed():
            provider = Provider.SANDBOX
        else:  # not the sandbox's refusal: the customer chose no provider
            raise ProviderUnavailable("No payment method is configured on this server: paid plans cannot be chosen.")
    ensure_provider(provider)
    if provider == Provider.SANDBOX:
        return SubscriptionChange(subscription=_sandbox_subscribe(organization=organization, plan=plan, actor=actor))
    if provider != Provider.STRIPE:
        raise ProviderUnavailable("Subscriptions are paid with Stripe.")
    if not plan.stripe_price_id:
        raise ProviderUnavailable(f"The {plan.name} plan has no Stripe price configured.")
    from billing import stripe_gateway

    url = stripe_gateway.create_subscription_checkout(
        organization=organization,
        plan=plan,
        customer_id=subscription.stripe_customer_id if subscription else "",
        email=getattr(actor, "email", ""),
    )
    return SubscriptionChange(subscription=subscription, checkout_url=url)


@transaction.atomic
def _sandbox_subscribe(*, organization: Organization, plan: Plan, actor: Any) -> Subscription:
    now = timezone.now()
    subscription, created = Subscription.objects.select_for_update().get_or_create(
        organization=organization, defaults={"plan": plan, "provider": Provider.SANDBOX}
    )
    if not created and subscription.is_live and subscription.plan_id == plan.code:
        # Checked again under the lock: two requests at once must not both grant the month.
        raise AlreadyOnPlan(f"Your organization is already on the {plan.name} plan.")
    subscription.plan = plan
    subscription.provider = Provider.SANDBOX
    subscription.status = Subscription.Status.ACTIVE
    subscription.cancel_at_period_end = False
    subscription.current_period_end = now + timedelta(days=30)
    subscription.save()
    change_plan(organization=organization, plan_code=plan.code, actor=actor)
    purchase = Purchase.objects.create(
        organization=organization,
        kind=Purchase.Kind.SUBSCRIPTION,
        provider=Provider.SANDBOX,
        plan=plan,
        credits=plan.monthly_credits,
        amount=plan.monthly_price,
        provider_reference=f"sandbox_sub_{uuid.uuid4().hex}",
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    txn = None
    if plan.monthly_credits:
        txn = credit_services.grant_credits(
            organization=organization,
            amount=plan.monthly_credits,
            source=system_accounts.SUBSCRIPTION_GRANTS,
            kind=Transaction.Kind.SUBSCRIPTION_GRANT,
            reason=f"{plan.name} plan: {plan.monthly_credits:,} credits",
            idempotency_key=f"sandbox:subscription:{purchase.provider_reference}",
            metadata={"purchaseId": purchase.pk, "plan": plan.code},
        )
    Purchase.objects.filter(pk=purchase.pk).update(
        status=Purchase.Status.COMPLETED, completed_at=now, ledger_transaction=txn
    )
    from billing import tasks

    delay_on_commit(tasks.send_payment_confirmation, purchase.pk)
    return subscription


def cancel_subscription(*, organization: Organization, actor: Any = None) -> Subscription:
    """Cancel at the end of the paid period (Stripe); the demo sandbox has no periods and ends at once."""
    subscription = Subscription.objects.filter(organization=organization).first()
    if subscription is None or not subscription.is_live:
        raise NoSubscription()
    if subscription.provider == Provider.STRIPE:
        from billing import stripe_gateway

        stripe_gateway.cancel_subscription_at_period_end(subscription=subscription)
        with transaction.atomic():
            Subscription.objects.filter(pk=subscription.pk).update(cancel_at_period_end=True, updated_at=timezone.now())
            record_audit(
                event="subscription_cancel_requested",
                actor=actor,
                organization=organization,
                target=f"subscription:{subscription.pk}",
                new={"cancelAtPeriodEnd": True},
            )
        subscription.refresh_from_db()
        return subscription
    with transaction.atomic():
        subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
        subscription.status = Subscription.Status.CANCELED
        subscription.save(update_fields=["status", "updated_at"])
        change_plan(organization=organization, plan_code="free", actor=actor)
    return subscription


# --- Disputes -------------------------------------------------------------------------------


@transaction.atomic
def open_dispute(*, purchase: Purchase, reason: str, actor: Any = None) -> Dispute:
    """A customer disputes a charge from the portal: an open dispute for staff."""
    purchase = Purchase.objects.select_for_update().get(pk=purchase.pk)
    if purchase.completed_at is None:
        raise PurchaseNotFound("Only a completed payment can be disputed.")
    if Dispute.objects.filter(purchase=purchase, status=Dispute.Status.OPEN).exists():
        raise DisputeAlreadyOpen()
    reason = reason.strip()
    if len(reason) > MAX_DISPUTE_REASON_LENGTH:
        raise DisputeReasonTooLong(
            f"The reason is {len(reason):,} characters long: at most {MAX_DISPUTE_REASON_LENGTH} are allowed."
        )
    dispute = Dispute.objects.create(
        organization=purchase.organization,
        purchase=purchase,
        source=Dispute.Source.CUSTOMER,
        reason=reason,
        amount=purchase.amount,
        opened_by=actor if getattr(actor, "pk", None) else None,
    )
    record_audit(
        event="dispute_opened",
        actor=actor,
        organization=purchase.organization,
        target=f"dispute:{dispute.pk}",
        new={"source": "customer", "purchase": purchase.pk},
    )
    return dispute


@transaction.atomic
def resolve_dispute(*, dispute: Dispute, resolution: str, refund_credits: int = 0, actor: Any = None) -> Dispute:
    """Staff close a dispute, optionally giving credits back through the ledger.

    What the disputes of one purchase give back, together with what its provider refunds
    took back, never exceeds the purchase's credits (`selectors.get_dispute_refundable_credits`);
    money refunded after a payout takes back the part of the payout it covers (`_take_back_share`).
    The purchase row is locked first (the order `open_dispute` and `record_stripe_refund`
    use), so two resolutions of one purchase's disputes, or a resolution and a refund, queue
    and each counts the other. A refused amount raises and changes nothing.
    """
    if not isinstance(refund_credits, int) or isinstance(refund_credits, bool) or refund_credits < 0:
        raise InvalidCreditAmount("Credits given back for a dispute are a whole number, 0 or more.")
    purchase_id = Dispute.objects.filter(pk=dispute.pk).values_list("purchase_id", flat=True).first()
    purchase = Purchase.objects.select_for_update().filter(pk=purchase_id).first() if purchase_id else None
    dispute = Dispute.objects.select_for_update().get(pk=dispute.pk)
    if dispute.status != Dispute.Status.OPEN:
        raise DisputeNotOpen()
    if refund_credits:
        refundable = selectors.get_dispute_refundable_credits(purchase=purchase)
        if refund_credits > refundable:
            raise DisputeRefundTooLarge(
                f"At most {refundable:,} credits can be given back for this dispute: "
                + (
                    f"purchase #{purchase.pk} had {purchase.credits:,} credits, less what was already "
                    "refunded or given back for it."
                    if purchase is not None
                    else "it is not linked to a completed purchase."
                ),
                refundable=refundable,
            )
        credit_services.grant_credits(
            organization=dispute.organization,
            amount=refund_credits,
            source=system_accounts.DISPUTES,
            kind=Transaction.Kind.DISPUTE_REFUND,
            reason=f"Dispute #{dispute.pk} resolved",
            idempotency_key=f"dispute:{dispute.pk}:refund",
            metadata={"disputeId": dispute.pk, "purchaseId": purchase.pk},
            actor=actor,
        )
    dispute.status = Dispute.Status.RESOLVED
    dispute.resolution = resolution.strip()
    dispute.credits_refunded = F("credits_refunded") + refund_credits
    dispute.resolved_by = actor if getattr(actor, "pk", None) else None
    dispute.resolved_at = timezone.now()
    dispute.save()
    dispute.refresh_from_db()
    record_audit(
        event="dispute_resolved",
        actor=actor,
        organization=dispute.organization,
        target=f"dispute:{dispute.pk}",
        new={"resolution": dispute.resolution, "creditsRefunded": refund_credits},
    )
    return dispute


# --- Stripe webhook endpoint ----------------------------------------------------------------


@transaction.atomic
def install_stripe_webhook_endpoint(*, secret: str, endpoint_id: str = "we_creditdesk", url: str = ""):
    """The dj-stripe endpoint row that holds the signing secret; its uuid is in the webhook URL."""
    from djstripe.models import WebhookEndpoint

    endpoint, _ = WebhookEndpoint.objects.update_or_create(
        id=endpoint_id,
        defaults={
            "secret": secret,
            "livemode": bool(settings.STRIPE_LIVE_MODE),
            "enabled_events": [
                "checkout.session.completed",
                "checkout.session.async_payment_succeeded",
                "checkout.session.async_payment_failed",
                "checkout.session.expired",
                "invoice.paid",
                "invoice_payment.paid",
                "customer.subscription.created",
                "customer.subscription.updated",
                "customer.subscription.deleted",
                "charge.refunded",
                "charge.dispute.created",
                "charge.dispute.closed",
            ],
            "status": "enabled",
            "url": url or f"{settings.SITE_URL.rstrip('/')}/stripe/webhook/",
        },
    )
    return endpoint


# --- Housekeeping -----------------------------------------------------------------------------


STALE_PURCHASE_AGE = timedelta(hours=24)
QUOTE_RETENTION = timedelta(days=1)


def expire_stale_billing(*, now=None) -> dict[str, int]:
    """Pending purchases nobody paid within a day (their checkout is long gone) are expired and free their
    promotion; open quotes a day past expiry are deleted. Safe to run any time (periodic task).

    A payment that still completes later (a PayPal capture pending for days) is granted by
    `complete_purchase`, which takes the promotion again if it still can.
    """
    now = now or timezone.now()
    stale_ids = list(
        Purchase.objects.filter(status=Purchase.Status.PENDING, created_at__lt=now - STALE_PURCHASE_AGE).values_list(
            "pk", flat=True
        )[:1000]
    )
    for purchase_id in stale_ids:
        release_purchase(purchase_id=purchase_id, status=Purchase.Status.EXPIRED, note="Never paid.")
    deleted, _ = Quote.objects.filter(status=Quote.Status.OPEN, expires_at__lt=now - QUOTE_RETENTION).delete()
    return {"purchases": len(stale_ids), "quotes": deleted}
