"""Calls to Stripe's API (never inside a database transaction). Webhooks come in through dj-stripe.

Money goes to Stripe in cents from OUR stored quote; our purchase id rides along in the
metadata only to find the purchase again, never to decide what is granted.
"""

import time
from typing import Any

import stripe
from django.conf import settings
from django.urls import reverse
from djstripe.settings import djstripe_settings

from accounts.models import Organization
from billing.errors import PaymentProviderError
from billing.models import Plan, Purchase, Subscription
from billing.pricing import cents

# Stripe lets a Checkout Session live from 30 minutes to 24 hours.
CHECKOUT_LIFETIME_SECONDS = 60 * 60


def _options(idempotency_key: str | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "api_key": settings.STRIPE_SECRET_KEY,
        "stripe_version": djstripe_settings.STRIPE_API_VERSION,
    }
    if idempotency_key:
        options["idempotency_key"] = idempotency_key
    return options


def _url(name: str, query: str = "") -> str:
    return f"{settings.SITE_URL.rstrip('/')}{reverse(name)}{query}"


def create_purchase_checkout(*, purchase: Purchase) -> tuple[str, str]:
    """A Checkout Session (mode payment) for the purchase's quote: (session id, URL)."""
    quote = purchase.quote
    label = f"{quote.credits:,} Creditdesk credits" + (
        f" + {quote.bonus_credits:,} bonus" if quote.bonus_credits else ""
    )
    metadata = {
        "purchase_id": str(purchase.pk),
        "quote_id": str(quote.pk),
        "organization_id": str(purchase.organization_id),
    }
    try:
        session = stripe.checkout.Session.create(
            mode="payment",
            line_items=[
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": purchase.currency,
                        "unit_amount": cents(purchase.amount),
                        "product_data": {"name": label},
                    },
                }
            ],
            client_reference_id=str(purchase.organization_id),
            customer_email=purchase.created_by.email if purchase.created_by else None,
            metadata=metadata,
            payment_intent_data={"metadata": metadata},
            success_url=_url("billing:checkout_return", f"?purchase={purchase.pk}&session_id={{CHECKOUT_SESSION_ID}}"),
            cancel_url=_url("billing:buy", f"?canceled=1&purchase={purchase.pk}"),
            expires_at=int(time.time()) + CHECKOUT_LIFETIME_SECONDS,
            **_options(idempotency_key=f"creditdesk-purchase-{purchase.pk}"),
        )
    except stripe.StripeError as exc:
        raise PaymentProviderError() from exc
    return session["id"], session["url"]


def expire_purchase_checkout(*, session_id: str) -> bool:
    """Make an unpaid Checkout Session unpayable: True once it is expired (now or before),
    False when the customer completed it (paid, or a bank payment under way)."""
    try:
        session = stripe.checkout.Session.retrieve(session_id, **_options())
        if session.get("status") == "open":
            try:
                session = stripe.checkout.Session.expire(session_id, **_options())
            except stripe.InvalidRequestError:
                # Completed between the two calls: Stripe only expires open sessions.
                session = stripe.checkout.Session.retrieve(session_id, **_options())
    except stripe.StripeError as exc:
        raise PaymentProviderError("Stripe could not be reached to confirm the cancellation.") from exc
    return session.get("status") == "expired"


def create_subscription_checkout(*, organization: Organization, plan: Plan, customer_id: str, email: str) -> str:
    """A Checkout Session in subscription mode for the plan's recurring price: its URL."""
    metadata = {"organization_id": str(organization.pk), "plan": plan.code}
    params: dict[str, Any] = {
        "mode": "subscription",
        "line_items": [{"price": plan.stripe_price_id, "quantity": 1}],
        "client_reference_id": str(organization.pk),
        "metadata": metadata,
        "subscription_data": {"metadata": metadata},
        "success_url": _url("billing:plan", "?subscribed=1"),
        "cancel_url": _url("billing:plan", "?canceled=1"),
    }
    if customer_id:
        params["customer"] = customer_id
    elif email:
        params["customer_email"] = email
    try:
        session = stripe.checkout.Session.create(**params, **_options())
    except stripe.StripeError as exc:
        raise PaymentProviderError(
            "Stripe could not be reached to start the subscription; nothing was charged. Try again in a few minutes."
        ) from exc
    return session["url"]


def change_subscription_price(*, subscription: Subscription, plan: Plan, upgrade: bool) -> None:
    """Swap the subscription's price with proration: an upgrade is invoiced now, a downgrade credits later."""
    if not plan.stripe_price_id:
        from billing.errors import ProviderUnavailable

        raise ProviderUnavailable(f"The {plan.name} plan has no Stripe price configured.")
    try:
        remote = stripe.Subscription.retrieve(subscription.stripe_subscription_id, **_options())
        item_id = remote["items"]["data"][0]["id"]
        stripe.Subscription.modify(
            subscription.stripe_subscription_id,
            items=[{"id": item_id, "price": plan.stripe_price_id}],
            proration_behavior="always_invoice" if upgrade else "create_prorations",
            cancel_at_period_end=False,
            metadata={"organization_id": str(subscription.organization_id), "plan": plan.code},
            **_options(),
        )
    except stripe.StripeError as exc:
        raise PaymentProviderError(
            "Stripe could not be reached to change the plan. Try again in a few minutes."
        ) from exc


def cancel_subscription_at_period_end(*, subscription: Subscription) -> None:
    try:
        stripe.Subscription.modify(subscription.stripe_subscription_id, cancel_at_period_end=True, **_options())
    except stripe.StripeError as exc:
        raise PaymentProviderError(
            "Stripe could not be reached, so the subscription was not canceled and still renews. "
            "Try again in a few minutes."
        ) from exc


def create_portal_session(*, customer_id: str) -> str:
    """The Stripe customer portal (payment methods, invoices): its URL."""
    try:
        session = stripe.billing_portal.Session.create(
            customer=customer_id, return_url=_url("billing:plan"), **_options()
        )
    except stripe.StripeError as exc:
        raise PaymentProviderError(
            "Stripe's billing portal could not be opened; nothing was changed. Try again in a few minutes."
        ) from exc
    return session["url"]
