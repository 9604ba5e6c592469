"""Stripe webhooks through dj-stripe's signed endpoint: each event delivered twice and out of order grants once."""

import time
from decimal import Decimal

import pytest

from billing.models import Dispute, Purchase, Subscription
from billing.services import release_purchase, start_purchase
from credits.models import Transaction
from credits.selectors import get_balance, verify_ledger
from credits.services import spend_credits
from tests.billing.conftest import STRIPE_SECRET, new_id, quote_for, stripe_event

pytestmark = pytest.mark.django_db


def balance(organization) -> int:
    return get_balance(organization_id=organization.pk)


def start_stripe_purchase(fake_stripe, organization, owner, **quote_kwargs) -> Purchase:
    quote = quote_for(organization, **(quote_kwargs or {"credits": 1000}))
    started = start_purchase(organization=organization, quote_id=quote.pk, provider="stripe", actor=owner)
    assert started.checkout_url.startswith("https://checkout.stripe.test/")
    return started.purchase


def succeeded_payment_intent(fake_stripe, *, amount_cents: int, metadata: dict, customer: str | None = None) -> dict:
    return fake_stripe.put(
        {
            "id": new_id("pi"),
            "object": "payment_intent",
            "amount": amount_cents,
            "currency": "usd",
            "status": "succeeded",
            "livemode": False,
            "created": int(time.time()),
            "customer": customer,
            "payment_method": None,
            "metadata": metadata,
        }
    )


def paid_session(fake_stripe, purchase: Purchase, **overrides) -> dict:
    """The session as Stripe sends it once paid (and as dj-stripe reads it back from the API)."""
    payment_intent = succeeded_payment_intent(
        fake_stripe, amount_cents=int(purchase.amount * 100), metadata={"purchase_id": str(purchase.pk)}
    )
    session = {
        "id": purchase.provider_reference,
        "object": "checkout.session",
        "mode": "payment",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": int(purchase.amount * 100),
        "amount_subtotal": int(purchase.amount * 100),
        "currency": "usd",
        "payment_intent": payment_intent["id"],
        "customer": None,
        "client_reference_id": str(purchase.organization_id),
        "metadata": {"purchase_id": str(purchase.pk), "quote_id": str(purchase.quote_id)},
        "livemode": False,
        "created": int(time.time()),
        "subscription": None,
        "url": None,
        **overrides,
    }
    return fake_stripe.put(session)


def charge_for(fake_stripe, purchase: Purchase, *, refunded_cents: int = 0) -> dict:
    """The purchase's charge; Stripe copies the PaymentIntent's metadata (set by our checkout) to it."""
    return fake_stripe.put(
        {
            "id": new_id("ch"),
            "object": "charge",
            "amount": int(purchase.amount * 100),
            "amount_refunded": refunded_cents,
            "refunded": refunded_cents >= int(purchase.amount * 100),
            "currency": "usd",
            "paid": True,
            "status": "succeeded",
            "payment_intent": purchase.provider_payment_id,
            "customer": None,
            "livemode": False,
            "created": int(time.time()),
            "metadata": {
                "purchase_id": str(purchase.pk),
                "quote_id": str(purchase.quote_id),
                "organization_id": str(purchase.organization_id),
            },
        }
    )


def test_checkout_creates_a_payment_session_for_the_quote_total(fake_stripe, organization, owner):
    purchase = start_stripe_purchase(fake_stripe, organization, owner, credits=5000)

    [body] = fake_stripe.posted("checkout/sessions")
    assert body["mode"] == ["payment"]
    assert body["line_items[0][price_data][unit_amount]"] == ["45000"]  # 5,000 credits less 10%
    assert body["line_items[0][price_data][currency]"] == ["usd"]
    assert body["metadata[purchase_id]"] == [str(purchase.pk)]
    assert purchase.provider_reference.startswith("cs_")
    assert purchase.quote.status == "used"


def test_checkout_session_completed_grants_the_quote_credits_once_even_delivered_twice(
    fake_stripe, deliver, organization, owner, mailoutbox, django_capture_on_commit_callbacks
):
    purchase = start_stripe_purchase(fake_stripe, organization, owner)
    event = stripe_event("checkout.session.completed", paid_session(fake_stripe, purchase))

    with django_capture_on_commit_callbacks(execute=True):
        first = deliver(event)
        second = deliver(event)
        again_new_event_id = deliver({**event, "id": new_id("evt")})

    assert (first.status_code, second.status_code, again_new_event_id.status_code) == (200, 200, 200)
    assert balance(organization) == 1000
    assert Transaction.objects.filter(idempotency_key=f"stripe:checkout:{purchase.provider_reference}").count() == 1
    purchase.refresh_from_db()
    assert purchase.status == "completed"
    assert len(mailoutbox) == 1
    assert "1000 credits" in mailoutbox[0].subject


def test_credits_come_from_our_quote_never_from_the_metadata(fake_stripe, deliver, organization, owner):
    purchase = start_stripe_purchase(fake_stripe, organization, owner, credits=100)
    session = paid_session(
        fake_stripe, purchase, metadata={"purchase_id": str(purchase.pk), "credits": "1000000", "quote_id": "x"}
    )
    deliver(stripe_event("checkout.session.completed", session))
    assert balance(organization) == 100


def test_a_session_paid_with_another_amount_grants_nothing(fake_stripe, deliver, organization, owner):
    purchase = start_stripe_purchase(fake_stripe, organization, owner, credits=1000)
    session = paid_session(fake_stripe, purchase, amount_total=100)

    assert deliver(stripe_event("checkout.session.completed", session)).status_code == 200
    purchase.refresh_from_db()
    assert (balance(organization), purchase.status) == (0, "failed")


def test_a_forged_signature_is_refused_and_grants_nothing(fake_stripe, deliver, organization, owner):
    purchase = start_stripe_purchase(fake_stripe, organization, owner)
    event = stripe_event("checkout.session.completed", paid_session(fake_stripe, purchase))

    forged = deliver(event, secret="whsec_not_the_secret")
    garbage = deliver(event, signature="t=1,v1=deadbeef")
    missing = deliver(event, signature="")

    assert (forged.status_code, garbage.status_code, missing.status_code) == (400, 400, 400)
    assert balance(organization) == 0
    purchase.refresh_from_db()
    assert purchase.status == "pending"


def test_a_stale_signature_is_refused(fake_stripe, deliver, organization, owner):
    purchase = start_stripe_purchase(fake_stripe, organization, owner)
    event = stripe_event("checkout.session.completed", paid_session(fake_stripe, purchase))

    response = deliver(event, timestamp=int(time.time()) - 3600)

    assert response.status_code == 400
    assert balance(organization) == 0


def test_a_tampered_body_under_a_valid_signature_is_refused(fake_stripe, deliver, organization, owner):
    from tests.billing.conftest import stripe_signature

    purchase = start_stripe_purchase(fake_stripe, organization, owner)
    event = stripe_event("checkout.session.completed", paid_session(fake_stripe, purchase))
    import json

    signature = stripe_signature(json.dumps(event))
    event["data"]["object"]["amount_total"] = 1
    assert deliver(event, signature=signature).status_code == 400
    assert balance(organization) == 0


def test_an_expired_checkout_frees_the_promotion_and_a_later_completion_still_grants_once(
    fake_stripe, deliver, organization, owner
):
    from billing.models import Promotion, PromotionRedemption

    Promotion.objects.create(code="BONUS", bonus_credits=50)
    purchase = start_stripe_purchase(fake_stripe, organization, owner, credits=100, promo_code="BONUS")
    assert PromotionRedemption.objects.filter(purchase=purchase).exists()
    session = paid_session(fake_stripe, purchase)
    expired = stripe_event("checkout.session.expired", {**session, "status": "expired", "payment_status": "unpaid"})
    completed = stripe_event("checkout.session.completed", session)

    # Delivered out of order and twice: completion first, then a stale expiry, then both again.
    for event in (completed, expired, completed, expired):
        assert deliver(event).status_code == 200

    purchase.refresh_from_db()
    assert (purchase.status, balance(organization)) == ("completed", 150)
    assert PromotionRedemption.objects.filter(purchase=purchase).exists()


def test_refund_after_partial_spend_takes_back_what_it_can_and_records_the_rest(
    fake_stripe, deliver, organization, owner
):
    purchase = start_stripe_purchase(fake_stripe, organization, owner, credits=1000)  # $95.00
    deliver(stripe_event("checkout.session.completed", paid_session(fake_stripe, purchase)))
    purchase.refresh_from_db()
    spend_credits(organization=organization, amount=800, reason="usage", idempotency_key="t:spend")
    assert balance(organization) == 200

    half = charge_for(fake_stripe, purchase, refunded_cents=4750)
    full = {**half, "amount_refunded": 9500, "refunded": True}
    # Half refunded, then fully refunded; the events arrive full first, each twice.
    for charge in (full, half, full, half):
        assert deliver(stripe_event("charge.refunded", charge)).status_code == 200

    purchase.refresh_from_db()
    assert balance(organization) == 0
    assert (purchase.credits_reclaimed, purchase.credits_shortfall) == (200, 800)
    assert (purchase.status, purchase.refunded_amount) == ("refunded", Decimal("95.00"))
    from core.models import AuditEvent

    assert AuditEvent.objects.filter(event="refund_shortfall", organization=organization).count() == 1


def test_partial_refunds_take_back_their_share_once_each(fake_stripe, deliver, organization, owner):
    purchase = start_stripe_purchase(fake_stripe, organization, owner, credits=1000)
    deliver(stripe_event("checkout.session.completed", paid_session(fake_stripe, purchase)))
    purchase.refresh_from_db()

    quarter = charge_for(fake_stripe, purchase, refunded_cents=2375)
    half = {**quarter, "amount_refunded": 4750}
    for charge in (quarter, quarter, half, quarter, half):
        deliver(stripe_event("charge.refunded", charge))

    purchase.refresh_from_db()
    assert balance(organization) == 500
    assert (purchase.credits_reclaimed, purchase.credits_shortfall, purchase.status) == (
        500,
        0,
        "partially_refunded",
    )


def test_a_refund_arriving_before_its_payment_is_retried_and_then_applied_once(
    fake_stripe, deliver, organization, owner
):
    purchase = start_stripe_purchase(fake_stripe, organization, owner, credits=1000)
    session = paid_session(fake_stripe, purchase)
    purchase.provider_payment_id = session["payment_intent"]
    refund = stripe_event("charge.refunded", charge_for(fake_stripe, purchase, refunded_cents=9500))

    early = deliver(refund)
    assert early.status_code == 500  # nothing kept: Stripe delivers it again later
    assert balance(organization) == 0

    deliver(stripe_event("checkout.session.completed", session))
    assert balance(organization) == 1000
    assert deliver(refund).status_code == 200
    assert deliver(refund).status_code == 200
    assert balance(organization) == 0


def test_a_refund_before_a_late_completion_of_an_expired_purchase_waits_for_it(
    fake_stripe, deliver, organization, owner
):
    """Found in review: a bank payment still processing when the purchase expired; its refund
    arrived before the late success and was acknowledged and dropped, so the late success then
    granted every credit for money given back."""
    purchase = start_stripe_purchase(fake_stripe, organization, owner, credits=1000)
    session = paid_session(fake_stripe, purchase)
    release_purchase(purchase_id=purchase.pk, status=Purchase.Status.EXPIRED, note="Checkout expired.")
    purchase.provider_payment_id = session["payment_intent"]
    refund = stripe_event("charge.refunded", charge_for(fake_stripe, purchase, refunded_cents=9500))

    assert deliver(refund).status_code == 500  # Stripe delivers it again
    deliver(stripe_event("checkout.session.async_payment_succeeded", session))
    assert balance(organization) == 1000
    assert deliver(refund).status_code == 200

    assert balance(organization) == 0
    assert Purchase.objects.get(pk=purchase.pk).status == "refunded"


def test_a_charge_naming_our_purchase_in_its_metadata_but_not_its_payment_is_ignored(
    fake_stripe, deliver, organization, owner
):
    """Found in review: another system's charge whose metadata named our completed purchase
    (Stripe copies metadata as given) was taken for it, and its refund took our credits."""
    purchase = start_stripe_purchase(fake_stripe, organization, owner, credits=1000)
    deliver(stripe_event("checkout.session.completed", paid_session(fake_stripe, purchase)))
    purchase.refresh_from_db()
    foreign = charge_for(fake_stripe, purchase, refunded_cents=9500)
    foreign = fake_stripe.put({**foreign, "payment_intent": new_id("pi")})

    assert deliver(stripe_event("charge.refunded", foreign)).status_code == 200

    assert balance(organization) == 1000
    assert Purchase.objects.get(pk=purchase.pk).status == "completed"


def test_events_about_payments_that_are_not_ours_are_acknowledged_and_change_nothing(
    fake_stripe, deliver, organization, owner
):
    purchase = paid_stripe_purchase(fake_stripe, deliver, organization, owner)
    # Another system on the same Stripe account: its session, charge and dispute are not ours.
    intent = succeeded_payment_intent(fake_stripe, amount_cents=5000, metadata={"order": "shop-42"})
    session = fake_stripe.put(
        {
            "id": new_id("cs"),
            "object": "checkout.session",
            "mode": "payment",
            "status": "complete",
            "payment_status": "paid",
            "amount_total": 5000,
            "currency": "usd",
            "payment_intent": intent["id"],
            "customer": None,
            "client_reference_id": None,
            "metadata": {"order": "shop-42"},
            "livemode": False,
            "created": int(time.time()),
            "subscription": None,
            "url": None,
        }
    )
    charge = fake_stripe.put(
        {
            "id": new_id("ch"),
            "object": "charge",
            "amount": 5000,
            "amount_refunded": 5000,
            "refunded": True,
            "currency": "usd",
            "paid": True,
            "status": "succeeded",
            "payment_intent": intent["id"],
            "customer": None,
            "livemode": False,
            "created": int(time.time()),
            "metadata": {"order": "shop-42"},
        }
    )
    dispute = fake_stripe.put(
        {
            "id": new_id("dp"),
            "object": "dispute",
            "amount": 5000,
            "currency": "usd",
            "charge": charge["id"],
            "payment_intent": intent["id"],
            "reason": "fraudulent",
            "status": "lost",
            "balance_transactions": [],
            "livemode": False,
            "created": int(time.time()),
            "metadata": {},
        }
    )
    events = [
        stripe_event("checkout.session.completed", session),
        stripe_event("charge.refunded", charge),
        stripe_event("charge.dispute.created", {**dispute, "status": "needs_response"}),
        stripe_event("charge.dispute.closed", dispute),
    ]

    assert [deliver(event).status_code for event in events] == [200, 200, 200, 200]

    assert balance(organization) == 1000
    assert list(Purchase.objects.values_list("pk", flat=True)) == [purchase.pk]
    assert not Dispute.objects.exists()
    assert verify_ledger().ok


def test_a_database_error_while_applying_an_event_still_fails_so_stripe_delivers_it_again(
    fake_stripe, deliver, organization, owner, monkeypatch
):
    from django.db import OperationalError
    from djstripe.models import Event

    from billing import services

    purchase = paid_stripe_purchase(fake_stripe, deliver, organization, owner)
    refund = stripe_event("charge.refunded", charge_for(fake_stripe, purchase, refunded_cents=9500))

    def database_down(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    with monkeypatch.context() as patched:
        patched.setattr(services, "_purchase_for_charge", database_down)
        assert deliver(refund).status_code == 500
    assert not Event.objects.filter(id=refund["id"]).exists()
    assert balance(organization) == 1000

    assert deliver(refund).status_code == 200
    assert balance(organization) == 0


def test_a_stripe_dispute_flags_the_organization_once(fake_stripe, deliver, organization, owner):
    purchase = start_stripe_purchase(fake_stripe, organization, owner)
    deliver(stripe_event("checkout.session.completed", paid_session(fake_stripe, purchase)))
    purchase.refresh_from_db()
    charge = charge_for(fake_stripe, purchase)
    dispute = fake_stripe.put(
        {
            "id": new_id("dp"),
            "object": "dispute",
            "amount": 9500,
            "currency": "usd",
            "charge": charge["id"],
            "payment_intent": purchase.provider_payment_id,
            "reason": "fraudulent",
            "status": "needs_response",
            "balance_transactions": [],
            "livemode": False,
            "created": int(time.time()),
            "metadata": {},
        }
    )
    event = stripe_event("charge.dispute.created", dispute)
    assert deliver(event).status_code == 200
    assert deliver({**event, "id": new_id("evt")}).status_code == 200

    flagged = Dispute.objects.get()
    assert (flagged.organization, flagged.source, flagged.status, flagged.reason) == (
        organization,
        "stripe",
        "open",
        "fraudulent",
    )
    assert flagged.purchase == purchase


def stripe_dispute(fake_stripe, purchase: Purchase, *, amount: int, status: str) -> dict:
    charge = charge_for(fake_stripe, purchase)
    return fake_stripe.put(
        {
            "id": new_id("dp"),
            "object": "dispute",
            "amount": amount,
            "currency": "usd",
            "charge": charge["id"],
            "payment_intent": purchase.provider_payment_id,
            "reason": "fraudulent",
            "status": status,
            "balance_transactions": [],
            "livemode": False,
            "created": int(time.time()),
            "metadata": {},
        }
    )


def paid_stripe_purchase(fake_stripe, deliver, organization, owner) -> Purchase:
    purchase = start_stripe_purchase(fake_stripe, organization, owner, credits=1000)  # $95.00
    deliver(stripe_event("checkout.session.completed", paid_session(fake_stripe, purchase)))
    purchase.refresh_from_db()
    return purchase


def test_a_lost_chargeback_takes_back_the_purchases_credits_once(fake_stripe, deliver, organization, owner):
    purchase = paid_stripe_purchase(fake_stripe, deliver, organization, owner)
    opened = stripe_dispute(fake_stripe, purchase, amount=9500, status="needs_response")
    deliver(stripe_event("charge.dispute.created", opened))
    closed = {**opened, "status": "lost"}

    for _ in range(2):
        assert deliver(stripe_event("charge.dispute.closed", closed)).status_code == 200

    purchase.refresh_from_db()
    dispute = Dispute.objects.get()
    assert balance(organization) == 0
    assert (purchase.credits_reclaimed, purchase.credits_shortfall) == (1000, 0)
    assert (dispute.status, dispute.money_lost) == ("resolved", Decimal("95.00"))
    assert dispute.resolution == "Lost at Stripe: the bank took back 95.00 USD."
    assert Transaction.objects.filter(kind=Transaction.Kind.REFUND).count() == 1


def test_a_lost_chargeback_counts_with_refunds_and_what_was_spent(fake_stripe, deliver, organization, owner):
    purchase = paid_stripe_purchase(fake_stripe, deliver, organization, owner)
    spend_credits(organization=organization, amount=700, reason="usage", idempotency_key="t:spend")
    deliver(stripe_event("charge.refunded", charge_for(fake_stripe, purchase, refunded_cents=2375)))  # a quarter
    closed = stripe_dispute(fake_stripe, purchase, amount=4750, status="lost")  # half, never seen open

    assert deliver(stripe_event("charge.dispute.closed", closed)).status_code == 200

    purchase.refresh_from_db()
    # Three quarters of the money went back: 750 credits, of which 450 were already spent.
    assert (purchase.credits_reclaimed, purchase.credits_shortfall) == (300, 450)
    assert balance(organization) == 0
    assert Dispute.objects.get().money_lost == Decimal("47.50")


def test_a_won_chargeback_resolves_the_dispute_and_takes_nothing(fake_stripe, deliver, organization, owner):
    purchase = paid_stripe_purchase(fake_stripe, deliver, organization, owner)
    opened = stripe_dispute(fake_stripe, purchase, amount=9500, status="needs_response")
    deliver(stripe_event("charge.dispute.created", opened))

    deliver(stripe_event("charge.dispute.closed", {**opened, "status": "won"}))

    dispute = Dispute.objects.get()
    assert (dispute.status, dispute.resolution, dispute.money_lost) == ("resolved", "Closed by Stripe: won.", 0)
    assert balance(organization) == 1000


def test_a_chargeback_lost_after_staff_resolved_it_keeps_their_resolution_and_takes_the_credits(
    fake_stripe, deliver, organization, owner, staff
):
    from billing.services import resolve_dispute

    purchase = paid_stripe_purchase(fake_stripe, deliver, organization, owner)
    opened = stripe_dispute(fake_stripe, purchase, amount=9500, status="needs_response")
    deliver(stripe_event("charge.dispute.created", opened))
    resolve_dispute(dispute=Dispute.objects.get(), resolution="Contested with evidence.", actor=staff)

    deliver(stripe_event("charge.dispute.closed", {**opened, "status": "lost"}))

    dispute = Dispute.objects.get()
    assert dispute.resolution == "Contested with evidence."
    assert dispute.money_lost == Decimal("95.00")
    assert balance(organization) == 0


# --- Subscriptions --------------------------------------------------------------------------------


@pytest.fixture
def stripe_prices(db, fake_stripe):
    from billing.models import Plan

    product = fake_stripe.put(
        {
            "id": "prod_plans",
            "object": "product",
            "name": "Creditdesk plans",
            "active": True,
            "livemode": False,
            "created": 1700000000,
            "metadata": {},
            "type": "service",
        }
    )
    for plan in Plan.objects.filter(code__in=["starter", "professional", "enterprise"]):
        plan.stripe_price_id = f"price_{plan.code}"
        plan.save(update_fields=["stripe_price_id"])
        fake_stripe.put(
            {
                "id": plan.stripe_price_id,
                "object": "price",
                "active": True,
                "currency": "usd",
                "unit_amount": int(plan.monthly_price * 100),
                "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"},
                "type": "recurring",
                "billing_scheme": "per_unit",
                "product": product["id"],
                "livemode": False,
                "created": 1700000000,
                "metadata": {},
            }
        )


def stripe_subscription(
    fake_stripe, organization, plan: str, *, customer: str, status: str = "active", start: int | None = None
) -> dict:
    now = int(time.time()) if start is None else start
    subscription_id = new_id("sub")
    return fake_stripe.put(
        {
            "id": subscription_id,
            "object": "subscription",
            "customer": customer,
            "status": status,
            "cancel_at_period_end": False,
            "metadata": {"organization_id": str(organization.pk), "plan": plan},
            "items": {
                "object": "list",
                "has_more": False,
                "url": f"/v1/subscription_items?subscription={subscription_id}",
                "data": [
                    {
                        "id": new_id("si"),
                        "object": "subscription_item",
                        "subscription": subscription_id,
                        "quantity": 1,
                        "created": now,
                        "metadata": {},
                        "price": fake_stripe.objects[f"price_{plan}"],
                        "current_period_start": now,
                        "current_period_end": now + 30 * 86400,
                    }
                ],
            },
            "livemode": False,
            "created": now,
        }
    )


def customer(fake_stripe, email="owner@acme.test") -> dict:
    return fake_stripe.put(
        {
            "id": new_id("cus"),
            "object": "customer",
            "email": email,
            "livemode": False,
            "created": int(time.time()),
            "metadata": {},
            "invoice_settings": {"default_payment_method": None},
        }
    )


def invoice_line(
    subscription: dict,
    plan: str,
    amount_cents: int,
    *,
    proration: bool = False,
    start: int | None = None,
    end: int | None = None,
    legacy: bool = False,
) -> dict:
    """An invoice line as Stripe sends it: the current shape, or (`legacy`) the one before 2025-03-31."""
    start = int(time.time()) if start is None else start
    line = {
        "id": new_id("il"),
        "object": "line_item",
        "amount": amount_cents,
        "currency": "usd",
        "period": {"start": start, "end": start + 30 * 86400 if end is None else end},
    }
    if legacy:
        kind = "invoiceitem" if proration else "subscription"
        return {**line, "type": kind, "proration": proration, "price": {"id": f"price_{plan}", "object": "price"}}
    # A proration is a pending invoice item Stripe created when the price changed; the period's
    # own charge is the subscription item's.
    parent = (
        {"type": "invoice_item_details", "invoice_item_details": {"proration": True, "invoice_item": new_id("ii")}}
        if proration
        else {"type": "subscription_item_details", "subscription_item_details": {"proration": False}}
    )
    parent[parent["type"]]["subscription"] = subscription["id"]
    return {
        **line,
        "parent": parent,
        "pricing": {"type": "price_details", "price_details": {"price": f"price_{plan}", "product": "prod_plans"}},
    }


def invoice(
    fake_stripe,
    subscription: dict,
    *,
    plan: str = "",
    amount_cents: int,
    reason: str,
    lines: list[dict] | None = None,
    legacy: bool = False,
) -> dict:
    """A paid subscription invoice: one line for `plan`'s period unless `lines` are given."""
    now = int(time.time())
    obj = {
        "id": new_id("in"),
        "object": "invoice",
        "customer": subscription["customer"],
        "status": "paid",
        "paid": True,
        "amount_paid": amount_cents,
        "amount_due": amount_cents,
        "currency": "usd",
        "billing_reason": reason,
        "lines": {
            "object": "list",
            "data": lines or [invoice_line(subscription, plan, amount_cents, legacy=legacy)],
            "has_more": False,
        },
        "livemode": False,
        "created": now,
        "metadata": {},
    }
    if legacy:
        obj.update(subscription=subscription["id"], subscription_details={"metadata": subscription["metadata"]})
    else:
        obj["parent"] = {
            "type": "subscription_details",
            "subscription_details": {"subscription": subscription["id"], "metadata": subscription["metadata"]},
        }
    return fake_stripe.put(obj)


def test_subscription_change_without_a_subscription_opens_checkout_in_subscription_mode(
    fake_stripe, stripe_prices, client, owner, organization
):
    client.force_login(owner)
    response = client.post("/api/subscription/change", {"plan": "starter"}, content_type="application/json")

    assert response.status_code == 200
    assert response.json()["checkoutUrl"].startswith("https://checkout.stripe.test/")
    [body] = fake_stripe.posted("checkout/sessions")
    assert (body["mode"], body["line_items[0][price]"]) == (["subscription"], ["price_starter"])
    assert body["subscription_data[metadata][organization_id]"] == [str(organization.pk)]
    organization.refresh_from_db()
    assert organization.plan_id == "free"  # until Stripe confirms the payment


def test_invoice_paid_grants_the_period_credits_once_per_invoice_and_sets_the_plan(
    fake_stripe, stripe_prices, deliver, organization, redis_client, mailoutbox, django_capture_on_commit_callbacks
):
    buyer = customer(fake_stripe)
    subscription = stripe_subscription(fake_stripe, organization, "starter", customer=buyer["id"])
    first = invoice(fake_stripe, subscription, plan="starter", amount_cents=1999, reason="subscription_create")
    session = fake_stripe.put(
        {
            "id": new_id("cs"),
            "object": "checkout.session",
            "mode": "subscription",
            "status": "complete",
            "payment_status": "paid",
            "customer": buyer["id"],
            "subscription": subscription["id"],
            "client_reference_id": str(organization.pk),
            "metadata": {"organization_id": str(organization.pk), "plan": "starter"},
            "amount_total": 1999,
            "currency": "usd",
            "payment_intent": None,
            "livemode": False,
            "created": int(time.time()),
        }
    )
    paid = stripe_event("invoice.paid", first)
    completed = stripe_event("checkout.session.completed", session)

    # The invoice is often paid before the checkout's own event arrives; each comes twice.
    with django_capture_on_commit_callbacks(execute=True):
        for event in (paid, completed, paid, completed):
            assert deliver(event).status_code == 200

    organization.refresh_from_db()
    assert organization.plan_id == "starter"
    assert balance(organization) == 200
    local = Subscription.objects.get(organization=organization)
    assert (local.status, local.stripe_subscription_id, local.stripe_customer_id) == (
        "active",
        subscription["id"],
        buyer["id"],
    )
    assert redis_client.hget(f"creditdesk:org:{organization.pk}", "plan") == "starter"

    renewal = invoice(fake_stripe, subscription, plan="starter", amount_cents=1999, reason="subscription_cycle")
    with django_capture_on_commit_callbacks(execute=True):
        deliver(stripe_event("invoice.paid", renewal))
        deliver(stripe_event("invoice.paid", renewal))
    assert balance(organization) == 400
    assert Purchase.objects.filter(kind="subscription", organization=organization).count() == 2
    assert [m.subject for m in mailoutbox][-1].startswith("Your Starter plan renewed")


def test_upgrade_swaps_the_price_with_proration_and_the_prorated_invoice_grants_its_share(
    fake_stripe, stripe_prices, deliver, client, owner, organization
):
    buyer = customer(fake_stripe)
    subscription = stripe_subscription(fake_stripe, organization, "starter", customer=buyer["id"])
    deliver(
        stripe_event(
            "invoice.paid",
            invoice(fake_stripe, subscription, plan="starter", amount_cents=1999, reason="subscription_create"),
        )
    )
    client.force_login(owner)

    response = client.post("/api/subscription/change", {"plan": "professional"}, content_type="application/json")

    assert response.status_code == 200, response.json()
    assert response.json()["plan"]["code"] == "professional"
    [modify] = fake_stripe.posted(f"subscriptions/{subscription['id']}")
    assert modify["items[0][price]"] == ["price_professional"]
    assert modify["proration_behavior"] == ["always_invoice"]
    organization.refresh_from_db()
    assert organization.plan_id == "professional"

    # Half-way through the period Stripe invoices prorations only: the unused half of Starter
    # back, the remaining half of Professional. The plan is the positive line's; the credits
    # are the paid share of Professional's month: 600 x $15.00 / $49.99.
    half_way, period_end = int(time.time()), int(time.time()) + 15 * 86400
    prorated = invoice(
        fake_stripe,
        subscription,
        amount_cents=1500,
        reason="subscription_update",
        lines=[
            invoice_line(subscription, "starter", -1000, proration=True, start=half_way, end=period_end),
            invoice_line(subscription, "professional", 2500, proration=True, start=half_way, end=period_end),
        ],
    )
    deliver(stripe_event("invoice.paid", prorated))
    deliver(stripe_event("invoice.paid", prorated))
    assert balance(organization) == 200 + 180
    organization.refresh_from_db()
    assert organization.plan_id == "professional"
    assert Purchase.objects.get(provider_reference=prorated["id"]).plan_id == "professional"


@pytest.mark.parametrize("legacy", [False, True], ids=["current-shape", "shape-before-2025-03-31"])
def test_the_renewal_after_a_downgrade_puts_the_lower_plan_and_grants_its_credits(
    fake_stripe, stripe_prices, deliver, client, owner, organization, legacy
):
    buyer = customer(fake_stripe)
    subscription = stripe_subscription(fake_stripe, organization, "professional", customer=buyer["id"])
    first = invoice(
        fake_stripe, subscription, plan="professional", amount_cents=4999, reason="subscription_create", legacy=legacy
    )
    assert deliver(stripe_event("invoice.paid", first)).status_code == 200
    assert balance(organization) == 600
    client.force_login(owner)

    response = client.post("/api/subscription/change", {"plan": "starter"}, content_type="application/json")

    assert response.status_code == 200, response.json()
    [modify] = fake_stripe.posted(f"subscriptions/{subscription['id']}")
    assert (modify["items[0][price]"], modify["proration_behavior"]) == (["price_starter"], ["create_prorations"])

    # The next renewal carries the downgrade's prorations for the half period left (Professional's
    # unused time back, Starter's remaining time) before the new period of Starter.
    half_way, renewed_at = int(time.time()) - 15 * 86400, int(time.time())
    renewal = invoice(
        fake_stripe,
        subscription,
        amount_cents=1099,
        reason="subscription_cycle",
        legacy=legacy,
        lines=[
            invoice_line(
                subscription, "professional", -2500, proration=True, start=half_way, end=renewed_at, legacy=legacy
            ),
            invoice_line(subscription, "starter", 1600, proration=True, start=half_way, end=renewed_at, legacy=legacy),
            invoice_line(subscription, "starter", 1999, start=renewed_at, legacy=legacy),
        ],
    )
    for _ in range(2):
        assert deliver(stripe_event("invoice.paid", renewal)).status_code == 200

    organization.refresh_from_db()
    local = Subscription.objects.get(organization=organization)
    purchase = Purchase.objects.get(provider_reference=renewal["id"])
    assert organization.plan_id == "starter"
    assert balance(organization) == 600 + 200
    assert (local.plan_id, local.status, local.stripe_subscription_id) == ("starter", "active", subscription["id"])
    assert local.current_period_end.timestamp() == renewed_at + 30 * 86400
    assert (purchase.plan_id, purchase.credits, purchase.amount) == ("starter", 200, Decimal("10.99"))
    assert verify_ledger().ok


def test_cancel_asks_stripe_to_cancel_at_period_end_and_deletion_returns_to_free(
    fake_stripe, stripe_prices, deliver, client, owner, organization
):
    buyer = customer(fake_stripe)
    subscription = stripe_subscription(fake_stripe, organization, "starter", customer=buyer["id"])
    deliver(
        stripe_event(
            "invoice.paid",
            invoice(fake_stripe, subscription, plan="starter", amount_cents=1999, reason="subscription_create"),
        )
    )
    client.force_login(owner)

    response = client.post("/api/subscription/cancel", content_type="application/json")

    assert response.status_code == 200
    assert response.json()["cancelAtPeriodEnd"] is True
    [modify] = fake_stripe.posted(f"subscriptions/{subscription['id']}")
    assert modify["cancel_at_period_end"] == ["true"]
    organization.refresh_from_db()
    assert organization.plan_id == "starter"  # paid until the end of the period

    ended = {**subscription, "status": "canceled"}
    fake_stripe.put(ended)
    deleted = stripe_event("customer.subscription.deleted", ended)
    assert deliver(deleted).status_code == 200
    assert deliver(deleted).status_code == 200
    organization.refresh_from_db()
    assert organization.plan_id == "free"
    assert Subscription.objects.get(organization=organization).status == "canceled"


def subscribe(fake_stripe, deliver, organization, plan: str, amount_cents: int, *, customer_id: str, start: int):
    """A Stripe subscription started at `start` and its first invoice paid."""
    subscription = stripe_subscription(fake_stripe, organization, plan, customer=customer_id, start=start)
    first = invoice(
        fake_stripe,
        subscription,
        amount_cents=amount_cents,
        reason="subscription_create",
        lines=[invoice_line(subscription, plan, amount_cents, start=start)],
    )
    assert deliver(stripe_event("invoice.paid", first)).status_code == 200
    return subscription


def test_late_events_of_the_old_subscription_leave_the_new_one_current(
    fake_stripe, stripe_prices, deliver, organization
):
    buyer = customer(fake_stripe)
    now = int(time.time())
    old = subscribe(fake_stripe, deliver, organization, "starter", 1999, customer_id=buyer["id"], start=now - 86400)
    # Canceled at once in the portal and replaced by Professional; Stripe delivers the old one's
    # events after the new one's.
    new = subscribe(fake_stripe, deliver, organization, "professional", 4999, customer_id=buyer["id"], start=now)
    late = [
        stripe_event("customer.subscription.updated", old),
        stripe_event("customer.subscription.deleted", fake_stripe.put({**old, "status": "canceled"})),
    ]
    for event in late:
        assert deliver(event).status_code == 200

    organization.refresh_from_db()
    local = Subscription.objects.get(organization=organization)
    assert organization.plan_id == "professional"
    assert (local.stripe_subscription_id, local.status, local.plan_id) == (new["id"], "active", "professional")
    assert local.current_period_end.timestamp() == now + 30 * 86400
    assert balance(organization) == 200 + 600
    assert verify_ledger().ok


def test_a_deleted_subscription_stays_canceled_and_its_late_invoice_grants_nothing(
    fake_stripe, stripe_prices, deliver, organization
):
    buyer = customer(fake_stripe)
    now = int(time.time())
    subscription = subscribe(fake_stripe, deliver, organization, "starter", 1999, customer_id=buyer["id"], start=now)
    ended = fake_stripe.put({**subscription, "status": "canceled"})
    assert deliver(stripe_event("customer.subscription.deleted", ended)).status_code == 200

    # Events Stripe sent before the deletion, delivered after it.
    renewal = invoice(
        fake_stripe,
        subscription,
        amount_cents=1999,
        reason="subscription_cycle",
        lines=[invoice_line(subscription, "starter", 1999, start=now + 30 * 86400)],
    )
    late = [
        stripe_event("customer.subscription.updated", {**subscription, "status": "active"}),
        stripe_event("invoice.paid", renewal),
    ]
    for event in late:
        assert deliver(event).status_code == 200

    organization.refresh_from_db()
    local = Subscription.objects.get(organization=organization)
    assert organization.plan_id == "free"
    assert (local.stripe_subscription_id, local.status) == (subscription["id"], "canceled")
    assert balance(organization) == 200
    # Stripe took the money: the purchase is there for a refund to find, with no credits.
    purchase = Purchase.objects.get(provider_reference=renewal["id"])
    assert (purchase.status, purchase.credits, purchase.ledger_transaction) == ("completed", 0, None)
    assert purchase.amount == Decimal("19.99")
    assert verify_ledger().ok

    # Subscribing again the next day starts a new subscription, which becomes the current one.
    again = subscribe(fake_stripe, deliver, organization, "starter", 1999, customer_id=buyer["id"], start=now + 86400)
    organization.refresh_from_db()
    local.refresh_from_db()
    assert organization.plan_id == "starter"
    assert (local.stripe_subscription_id, local.status) == (again["id"], "active")
    assert balance(organization) == 400
    assert verify_ledger().ok


def invoice_payment_intent(fake_stripe, subscription: dict, amount_cents: int) -> dict:
    return succeeded_payment_intent(
        fake_stripe, amount_cents=amount_cents, metadata={}, customer=subscription["customer"]
    )


def subscription_charge(intent: dict, buyer: dict, *, refunded_cents: int = 0) -> dict:
    """The charge of a subscription payment of $19.99 (no metadata: Stripe's invoices set none)."""
    return {
        "id": new_id("ch"),
        "object": "charge",
        "amount": 1999,
        "amount_refunded": refunded_cents,
        "refunded": refunded_cents >= 1999,
        "currency": "usd",
        "paid": True,
        "status": "succeeded",
        "payment_intent": intent["id"],
        "customer": buyer["id"],
        "livemode": False,
        "created": int(time.time()),
        "metadata": {},
    }


@pytest.mark.parametrize(
    "order", ["invoice-then-payment", "payment-then-invoice", "shape-before-2025-03-31"], ids=lambda order: order
)
def test_a_refund_and_a_chargeback_of_a_subscription_payment_find_its_purchase(
    fake_stripe, stripe_prices, deliver, organization, order
):
    buyer = customer(fake_stripe)
    subscription = stripe_subscription(fake_stripe, organization, "starter", customer=buyer["id"])
    intent = invoice_payment_intent(fake_stripe, subscription, 1999)
    legacy = order == "shape-before-2025-03-31"
    paid = invoice(
        fake_stripe, subscription, plan="starter", amount_cents=1999, reason="subscription_create", legacy=legacy
    )
    charge = subscription_charge(intent, buyer)
    if legacy:
        # Before 2025-03-31 the invoice named its PaymentIntent and the charge its invoice.
        paid = fake_stripe.put({**paid, "payment_intent": intent["id"]})
        charge["invoice"] = paid["id"]
        events = [stripe_event("invoice.paid", paid)]
    else:
        # Since then neither does: the invoice's payment is an InvoicePayment, with its own event.
        payment = {
            "id": new_id("inpay"),
            "object": "invoice_payment",
            "invoice": paid["id"],
            "amount_paid": 1999,
            "amount_requested": 1999,
            "currency": "usd",
            "is_default": True,
            "livemode": False,
            "created": int(time.time()),
            "payment": {"type": "payment_intent", "payment_intent": intent["id"]},
            "status": "paid",
            "status_transitions": {"paid_at": int(time.time()), "canceled_at": None},
        }
        events = [stripe_event("invoice.paid", paid), stripe_event("invoice_payment.paid", payment)]
        if order == "payment-then-invoice":
            events.reverse()
    for event in events:
        assert deliver(event).status_code == 200
    assert balance(organization) == 200

    refunded = fake_stripe.put({**charge, "amount_refunded": 1999, "refunded": True})
    dispute = fake_stripe.put(
        {
            "id": new_id("dp"),
            "object": "dispute",
            "amount": 1999,
            "currency": "usd",
            "charge": charge["id"],
            "payment_intent": intent["id"],
            "reason": "fraudulent",
            "status": "needs_response",
            "balance_transactions": [],
            "livemode": False,
            "created": int(time.time()),
            "metadata": {},
        }
    )
    assert deliver(stripe_event("charge.refunded", refunded)).status_code == 200
    assert deliver(stripe_event("charge.dispute.created", dispute)).status_code == 200

    purchase = Purchase.objects.get(provider_reference=paid["id"])
    assert purchase.provider_payment_id == intent["id"]
    assert (purchase.status, purchase.credits_reclaimed, purchase.refunded_amount) == (
        "refunded",
        200,
        Decimal("19.99"),
    )
    assert balance(organization) == 0
    assert Dispute.objects.get(stripe_dispute_id=dispute["id"]).purchase == purchase
    assert verify_ledger().ok


def test_a_refund_of_a_renewal_not_recorded_yet_is_retried_and_then_applied(
    fake_stripe, stripe_prices, deliver, organization
):
    buyer = customer(fake_stripe)
    month_ago = int(time.time()) - 30 * 86400
    subscription = subscribe(
        fake_stripe, deliver, organization, "starter", 1999, customer_id=buyer["id"], start=month_ago
    )
    renewal = invoice(fake_stripe, subscription, plan="starter", amount_cents=1999, reason="subscription_cycle")
    intent = invoice_payment_intent(fake_stripe, subscription, 1999)
    charge = fake_stripe.put(subscription_charge(intent, buyer, refunded_cents=1999))
    refund = stripe_event("charge.refunded", charge)

    # A charge of our subscription's customer that matches no purchase yet: Stripe retries it.
    assert deliver(refund).status_code == 500
    assert balance(organization) == 200

    payment = {
        "id": new_id("inpay"),
        "object": "invoice_payment",
        "invoice": renewal["id"],
        "amount_paid": 1999,
        "currency": "usd",
        "payment": {"type": "payment_intent", "payment_intent": intent["id"]},
        "status": "paid",
    }
    deliver(stripe_event("invoice_payment.paid", payment))
    deliver(stripe_event("invoice.paid", renewal))
    assert balance(organization) == 400

    assert deliver(refund).status_code == 200
    assert balance(organization) == 200
    assert Purchase.objects.get(provider_reference=renewal["id"]).status == "refunded"
    assert verify_ledger().ok


def test_the_customer_portal_redirects_to_stripe(fake_stripe, stripe_prices, deliver, client, owner, organization):
    buyer = customer(fake_stripe)
    subscription = stripe_subscription(fake_stripe, organization, "starter", customer=buyer["id"])
    deliver(
        stripe_event(
            "invoice.paid",
            invoice(fake_stripe, subscription, plan="starter", amount_cents=1999, reason="subscription_create"),
        )
    )
    client.force_login(owner)

    response = client.post("/billing/plan/portal")

    assert response.status_code == 302
    assert response["Location"] == "https://billing.stripe.test/session/x"
    [body] = fake_stripe.posted("billing_portal/sessions")
    assert body["customer"] == [buyer["id"]]


def test_webhook_secret_is_the_endpoints(stripe_endpoint):
    assert stripe_endpoint.secret == STRIPE_SECRET


def test_the_endpoint_subscribes_to_refunds_and_chargebacks_opened_and_closed(stripe_endpoint):
    assert {"charge.refunded", "charge.dispute.created", "charge.dispute.closed"} <= set(stripe_endpoint.enabled_events)


def test_the_endpoint_subscribes_to_invoice_payments(stripe_endpoint):
    assert "invoice_payment.paid" in stripe_endpoint.enabled_events


def live_stripe_subscription(fake_stripe, deliver, organization, plan: str = "starter") -> dict:
    buyer = customer(fake_stripe)
    subscription = stripe_subscription(fake_stripe, organization, plan, customer=buyer["id"])
    deliver(
        stripe_event(
            "invoice.paid",
            invoice(fake_stripe, subscription, plan=plan, amount_cents=1999, reason="subscription_create"),
        )
    )
    return subscription


def test_a_live_stripe_subscription_cannot_change_to_its_own_plan(
    fake_stripe, stripe_prices, deliver, client, owner, organization
):
    subscription = live_stripe_subscription(fake_stripe, deliver, organization)
    client.force_login(owner)

    response = client.post("/api/subscription/change", {"plan": "starter"}, content_type="application/json")

    assert (response.status_code, response.json()["error"]) == (409, "already_on_plan")
    assert fake_stripe.posted(f"subscriptions/{subscription['id']}") == []
    assert fake_stripe.posted("checkout/sessions") == []
    assert balance(organization) == 200


def test_a_stripe_subscription_set_to_end_keeps_going_when_its_plan_is_chosen_again(
    fake_stripe, stripe_prices, deliver, client, owner, organization
):
    subscription = live_stripe_subscription(fake_stripe, deliver, organization)
    client.force_login(owner)
    client.post("/api/subscription/cancel", content_type="application/json")

    response = client.post("/api/subscription/change", {"plan": "starter"}, content_type="application/json")

    assert response.status_code == 200, response.json()
    modify = fake_stripe.posted(f"subscriptions/{subscription['id']}")[-1]
    assert (modify["items[0][price]"], modify["cancel_at_period_end"]) == (["price_starter"], ["false"])
    assert Subscription.objects.get(organization=organization).cancel_at_period_end is False
    assert balance(organization) == 200


# --- The page the customer comes back to ----------------------------------------------------------------


def returned_page(client, purchase: Purchase) -> str:
    response = client.get(f"/billing/checkout/return?purchase={purchase.pk}&session_id=x", follow=True)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize("event_type", ["checkout.session.async_payment_failed", "checkout.session.expired"])
def test_the_return_page_says_a_failed_or_expired_checkout_did_not_go_through(
    fake_stripe, deliver, client, organization, owner, event_type
):
    purchase = start_stripe_purchase(fake_stripe, organization, owner)
    session = paid_session(fake_stripe, purchase, status="complete", payment_status="unpaid")
    deliver(stripe_event(event_type, session))
    client.force_login(owner)

    page = returned_page(client, purchase)

    assert "The payment did not go through" in page
    assert "Payment received" not in page and "Stripe is confirming" not in page


def test_the_return_page_says_a_pending_payment_is_being_confirmed(fake_stripe, client, organization, owner):
    purchase = start_stripe_purchase(fake_stripe, organization, owner)
    client.force_login(owner)

    page = returned_page(client, purchase)

    assert "Stripe is confirming the payment" in page
    assert "did not go through" not in page


def test_the_return_page_says_a_mismatched_payment_goes_to_staff(fake_stripe, deliver, client, organization, owner):
    purchase = start_stripe_purchase(fake_stripe, organization, owner)
    deliver(stripe_event("checkout.session.completed", paid_session(fake_stripe, purchase, amount_total=100)))
    client.force_login(owner)

    page = returned_page(client, purchase)

    assert "could not be matched to your quote; our staff will look at it" in page
    assert "Payment received" not in page


def test_the_return_page_sends_a_paid_purchase_to_its_receipt(fake_stripe, deliver, client, organization, owner):
    purchase = paid_stripe_purchase(fake_stripe, deliver, organization, owner)
    client.force_login(owner)

    page = returned_page(client, purchase)

    assert "Payment received: 1,000 credits added." in page and f"Receipt #{purchase.pk}" in page


# --- Stripe unreachable: each page says what did not happen ----------------------------------------------


def stripe_down(*args, **kwargs):
    import stripe

    raise stripe.APIConnectionError("Stripe is down")


def test_a_cancel_stripe_refuses_says_the_subscription_was_not_canceled(
    fake_stripe, stripe_prices, deliver, client, owner, organization, monkeypatch
):
    import stripe

    live_stripe_subscription(fake_stripe, deliver, organization)
    monkeypatch.setattr(stripe.Subscription, "modify", stripe_down)
    client.force_login(owner)

    page = client.post("/billing/plan/cancel", follow=True).content.decode()
    api = client.post("/api/subscription/cancel", content_type="application/json")

    assert "the subscription was not canceled and still renews" in page
    assert "Ask for a new quote" not in page
    assert (api.status_code, api.json()["error"]) == (502, "payment_provider_error")
    assert "the subscription was not canceled" in api.json()["detail"]
    assert Subscription.objects.get(organization=organization).cancel_at_period_end is False


def test_a_portal_stripe_refuses_says_the_portal_could_not_be_opened(
    fake_stripe, stripe_prices, deliver, client, owner, organization, monkeypatch
):
    import stripe

    live_stripe_subscription(fake_stripe, deliver, organization)
    monkeypatch.setattr(stripe.billing_portal.Session, "create", stripe_down)
    client.force_login(owner)

    page = client.post("/billing/plan/portal", follow=True).content.decode()

    assert "Stripe&#x27;s billing portal could not be opened; nothing was changed." in page
    assert "Ask for a new quote" not in page


def test_a_plan_change_stripe_refuses_says_so_without_quotes(
    fake_stripe, stripe_prices, deliver, client, owner, organization, monkeypatch
):
    import stripe

    live_stripe_subscription(fake_stripe, deliver, organization)
    monkeypatch.setattr(stripe.Subscription, "modify", stripe_down)
    client.force_login(owner)

    response = client.post("/api/subscription/change", {"plan": "professional"}, content_type="application/json")

    assert response.status_code == 502
    assert response.json()["detail"] == "Stripe could not be reached to change the plan. Try again in a few minutes."
    organization.refresh_from_db()
    assert organization.plan_id == "starter"


# --- Canceled at Stripe's page ------------------------------------------------------------------------


@pytest.fixture
def promoted_purchase(fake_stripe, organization, owner) -> Purchase:
    from billing.models import Promotion

    Promotion.objects.create(code="SPRING", percent_off=10)
    return start_stripe_purchase(fake_stripe, organization, owner, credits=1000, promo_code="spring")


def come_back_canceled(client, owner, purchase: Purchase) -> str:
    client.force_login(owner)
    response = client.get(f"/billing/buy/?canceled=1&purchase={purchase.pk}")
    assert response.status_code == 200
    return response.content.decode()


def test_canceling_at_stripe_expires_the_session_and_frees_the_promotion_code(
    fake_stripe, promoted_purchase, client, owner, organization
):
    from billing.models import PromotionRedemption

    [body] = fake_stripe.posted("checkout/sessions")
    assert body["cancel_url"][0].endswith(f"/billing/buy/?canceled=1&purchase={promoted_purchase.pk}")

    page = come_back_canceled(client, owner, promoted_purchase)

    assert "The payment was canceled; nothing was charged." in page
    promoted_purchase.refresh_from_db()
    assert promoted_purchase.status == "expired"
    assert fake_stripe.objects[promoted_purchase.provider_reference]["status"] == "expired"
    assert not PromotionRedemption.objects.exists()
    assert quote_for(organization, credits=1000, promo_code="SPRING").promotion.code == "SPRING"


def test_a_session_completed_meanwhile_is_not_released(fake_stripe, promoted_purchase, client, owner):
    from billing.models import PromotionRedemption

    # Paid (or a bank payment under way) at Stripe, its webhook not here yet.
    paid_session(fake_stripe, promoted_purchase, status="complete", payment_status="unpaid")

    page = come_back_canceled(client, owner, promoted_purchase)

    assert "This payment is still being processed" in page
    assert "nothing was charged" not in page
    promoted_purchase.refresh_from_db()
    assert promoted_purchase.status == "pending"
    assert PromotionRedemption.objects.filter(purchase=promoted_purchase).exists()


def test_a_paid_purchase_is_not_released_by_a_cancel_link(fake_stripe, deliver, client, organization, owner):
    purchase = paid_stripe_purchase(fake_stripe, deliver, organization, owner)

    page = come_back_canceled(client, owner, purchase)

    assert "This payment went through: 1,000 credits added." in page
    purchase.refresh_from_db()
    assert purchase.status == "completed" and balance(organization) == 1000


def test_a_cancel_link_for_another_organization_or_from_a_member_releases_nothing(
    fake_stripe, promoted_purchase, client, member, outsider
):
    for user in (member, outsider):
        come_back_canceled(client, user, promoted_purchase)

    promoted_purchase.refresh_from_db()
    assert promoted_purchase.status == "pending"
    assert fake_stripe.objects[promoted_purchase.provider_reference]["status"] == "open"


def test_stripe_unreachable_on_cancel_releases_nothing_and_says_so(
    fake_stripe, promoted_purchase, client, owner, monkeypatch
):
    import stripe

    monkeypatch.setattr(stripe.checkout.Session, "retrieve", stripe_down)

    page = come_back_canceled(client, owner, promoted_purchase)

    assert "Stripe could not be reached to confirm the cancellation." in page
    promoted_purchase.refresh_from_db()
    assert promoted_purchase.status == "pending"


# --- A lost chargeback, as the customer sees it ------------------------------------------------------------


def test_a_lost_chargeback_shows_in_the_purchases_and_leaves_the_amount_paid(
    fake_stripe, deliver, client, organization, owner
):
    purchase = paid_stripe_purchase(fake_stripe, deliver, organization, owner)
    deliver(stripe_event("charge.dispute.closed", stripe_dispute(fake_stripe, purchase, amount=9500, status="lost")))
    client.force_login(owner)

    history = client.get("/billing/purchases/").content.decode()
    receipt = client.get(f"/billing/purchases/{purchase.pk}/").content.decode()
    summary = client.get("/api/credits/summary").json()

    assert "Charged back" in history and "(charged back $95.00)" in history
    assert ">Completed<" not in history
    assert "<td>Charged back</td><td>$95.00" in receipt and "<td>Completed</td>" not in receipt
    assert summary["amountPaid"] == "0.00"


def test_a_partly_lost_chargeback_counts_with_refunds_in_the_amount_paid(
    fake_stripe, deliver, client, organization, owner
):
    purchase = paid_stripe_purchase(fake_stripe, deliver, organization, owner)  # $95.00
    deliver(stripe_event("charge.refunded", charge_for(fake_stripe, purchase, refunded_cents=2375)))
    deliver(stripe_event("charge.dispute.closed", stripe_dispute(fake_stripe, purchase, amount=4750, status="lost")))
    client.force_login(owner)

    history = client.get("/billing/purchases/").content.decode()

    assert "Partly charged back" in history and "(charged back $47.50)" in history
    assert client.get("/api/credits/summary").json()["amountPaid"] == "23.75"


def test_a_late_creation_event_does_not_take_a_live_subscription_back_to_incomplete(
    fake_stripe, stripe_prices, deliver, client, owner, organization
):
    """Found in review: `customer.subscription.created` (incomplete) arriving after the first
    invoice made the subscription not live, so cancelling it failed and a plan change opened a
    second paid subscription."""
    subscription = live_stripe_subscription(fake_stripe, deliver, organization)

    deliver(stripe_event("customer.subscription.created", {**subscription, "status": "incomplete"}))

    assert Subscription.objects.get(organization=organization).status == "active"
    client.force_login(owner)
    assert client.post("/api/subscription/cancel", content_type="application/json").status_code == 200
