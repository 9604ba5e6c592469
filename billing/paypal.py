"""PayPal Orders v2 over HTTPS with `requests` (never inside a database transaction).

Create an order for a purchase's quote, send the customer to approve it, capture it on
their return; PayPal's webhooks are verified by PayPal's own verification call.
`PAYMENT.CAPTURE.COMPLETED` grants the credits, once per capture id, whichever of it and
the customer's return arrives first; `PAYMENT.CAPTURE.REFUNDED` and `.REVERSED` take back
the refunded share (billing.services.record_paypal_refund).
"""

import json
import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlparse

import requests
from django.conf import settings
from django.core.cache import cache
from django.urls import reverse

from billing.errors import MalformedProviderEvent, PaymentProviderError
from billing.models import Purchase

logger = logging.getLogger(__name__)

TOKEN_CACHE_KEY = "billing:paypal:token"
VERIFY_HEADERS = {
    "auth_algo": "PAYPAL-AUTH-ALGO",
    "cert_url": "PAYPAL-CERT-URL",
    "transmission_id": "PAYPAL-TRANSMISSION-ID",
    "transmission_sig": "PAYPAL-TRANSMISSION-SIG",
    "transmission_time": "PAYPAL-TRANSMISSION-TIME",
}


def _base() -> str:
    return settings.PAYPAL_API_BASE.rstrip("/")


def _call(method: str, path: str, **kwargs: Any) -> requests.Response:
    try:
        return requests.request(method, f"{_base()}{path}", timeout=settings.PAYPAL_TIMEOUT_SECONDS, **kwargs)
    except requests.RequestException as exc:
        logger.warning("PayPal %s %s failed: %s", method, path, exc)
        raise PaymentProviderError() from exc


def _body(response: requests.Response, what: str) -> dict:
    """PayPal's JSON answer; anything else (an HTML error page, a list) is the provider failing."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        logger.warning("PayPal %s: not a JSON object (%s): %s", what, response.status_code, response.text[:500])
        raise PaymentProviderError()
    return body


def access_token() -> str:
    """An OAuth client-credentials token, cached until shortly before it expires."""
    token = cache.get(TOKEN_CACHE_KEY)
    if token:
        return token
    response = _call(
        "POST",
        "/v1/oauth2/token",
        auth=(settings.PAYPAL_CLIENT_ID, settings.PAYPAL_CLIENT_SECRET),
        data={"grant_type": "client_credentials"},
        headers={"Accept": "application/json"},
    )
    if response.status_code != 200:
        raise PaymentProviderError("PayPal refused our credentials.")
    body = _body(response, "token")
    token = body.get("access_token")
    if not token or not isinstance(token, str):
        logger.warning("PayPal's token answer has no token: %s", sorted(body))
        raise PaymentProviderError()
    try:
        lifetime = int(body.get("expires_in", 3600))
    except (TypeError, ValueError):
        lifetime = 3600
    cache.set(TOKEN_CACHE_KEY, token, max(60, lifetime - 120))
    return token


def _headers(request_id: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {access_token()}", "Content-Type": "application/json"}
    if request_id:
        headers["PayPal-Request-Id"] = request_id
    return headers


def _site_url(name: str) -> str:
    return f"{settings.SITE_URL.rstrip('/')}{reverse(name)}"


def create_order(*, purchase: Purchase) -> tuple[str, str]:
    """An order for the purchase's total: (order id, the URL where the customer approves it)."""
    body = {
        "intent": "CAPTURE",
        "purchase_units": [
            {
                "reference_id": str(purchase.pk),
                "custom_id": str(purchase.pk),
                "description": f"{purchase.credits:,} Creditdesk credits",
                "amount": {"currency_code": purchase.currency.upper(), "value": f"{purchase.amount:.2f}"},
            }
        ],
        "payment_source": {
            "paypal": {
                "experience_context": {
                    "return_url": _site_url("billing:paypal_return"),
                    "cancel_url": _site_url("billing:buy") + "?canceled=1",
                    "user_action": "PAY_NOW",
                    "shipping_preference": "NO_SHIPPING",
                }
            }
        },
    }
    response = _call(
        "POST", "/v2/checkout/orders", json=body, headers=_headers(request_id=f"creditdesk-purchase-{purchase.pk}")
    )
    if response.status_code not in (200, 201):
        logger.warning("PayPal order for purchase %s: %s %s", purchase.pk, response.status_code, response.text[:500])
        raise PaymentProviderError()
    order = _body(response, f"order for purchase {purchase.pk}")
    links = order.get("links") if isinstance(order.get("links"), list) else []
    approve = next(
        (
            link["href"]
            for link in links
            if isinstance(link, dict) and link.get("rel") in ("payer-action", "approve") and link.get("href")
        ),
        None,
    )
    if not isinstance(approve, str):
        raise PaymentProviderError("PayPal did not return an approval link.")
    if not order.get("id") or not isinstance(order["id"], str):
        logger.warning("PayPal order for purchase %s without an id", purchase.pk)
        raise PaymentProviderError()
    return order["id"], approve


@dataclass(frozen=True)
class Capture:
    order_id: str
    capture_id: str
    status: str
    amount: Decimal
    currency: str


def _money(value: Any) -> tuple[Decimal, str]:
    """PayPal's money object, `{"currency_code": "USD", "value": "95.00"}`, as (amount, "usd")."""
    if not isinstance(value, dict) or not isinstance(value.get("value"), str):
        raise MalformedProviderEvent("A PayPal amount is not an object with a value.")
    currency = value.get("currency_code")
    try:
        amount = Decimal(value["value"])
    except InvalidOperation as exc:
        raise MalformedProviderEvent(f"A PayPal amount is not a number: {value['value'][:40]!r}.") from exc
    if not amount.is_finite() or amount < 0 or not isinstance(currency, str) or not currency:
        raise MalformedProviderEvent("A PayPal amount is not a number of 0 or more with a currency.")
    return amount, currency.lower()


def _resource(event: dict) -> dict:
    resource = event.get("resource")
    if not isinstance(resource, dict):
        raise MalformedProviderEvent(f"The resource of a {event.get('event_type')} event is not an object.")
    return resource


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _capture_from_order(order: dict) -> Capture | None:
    try:
        for unit in order.get("purchase_units") or []:
            for capture in (unit.get("payments") or {}).get("captures") or []:
                amount, currency = _money(capture.get("amount"))
                return Capture(
                    order_id=str(order["id"]),
                    capture_id=str(capture["id"]),
                    status=_text(capture.get("status")),
                    amount=amount,
                    currency=currency,
                )
    except (MalformedProviderEvent, AttributeError, KeyError, TypeError) as exc:
        logger.warning("PayPal order %s: a capture we cannot read: %s", order.get("id"), exc)
        raise PaymentProviderError() from exc
    return None


def capture_order(*, order_id: str) -> Capture | None:
    """Capture an approved order (safe to repeat: an order already captured is read back)."""
    response = _call(
        "POST", f"/v2/checkout/orders/{order_id}/capture", json={}, headers=_headers(request_id=f"capture-{order_id}")
    )
    if response.status_code == 422 and "ORDER_ALREADY_CAPTURED" in response.text:
        response = _call("GET", f"/v2/checkout/orders/{order_id}", headers=_headers())
    if response.status_code not in (200, 201):
        logger.warning("PayPal capture of %s: %s %s", order_id, response.status_code, response.text[:500])
        return None
    return _capture_from_order(_body(response, f"capture of {order_id}"))


def verify_webhook(*, headers: Any, raw_body: str) -> bool:
    """Ask PayPal whether this webhook delivery is genuine (POST /v1/notifications/verify-webhook-signature).

    The event goes back exactly as received (re-serializing it could change what was signed).
    """
    if not settings.PAYPAL_WEBHOOK_ID:
        return False
    values = {field: headers.get(header, "") for field, header in VERIFY_HEADERS.items()}
    if not all(values.values()):
        return False
    envelope = json.dumps({**values, "webhook_id": settings.PAYPAL_WEBHOOK_ID})
    body = f'{envelope[:-1]}, "webhook_event": {raw_body}}}'
    try:
        response = _call("POST", "/v1/notifications/verify-webhook-signature", data=body, headers=_headers())
    except PaymentProviderError:
        return False
    if response.status_code != 200:
        return False
    try:
        return _body(response, "webhook verification").get("verification_status") == "SUCCESS"
    except PaymentProviderError:
        return False


def capture_from_webhook(event: dict) -> Capture | None:
    """The capture of a `PAYMENT.CAPTURE.COMPLETED` event (MalformedProviderEvent when it cannot be read)."""
    if event.get("event_type") != "PAYMENT.CAPTURE.COMPLETED":
        return None
    resource = _resource(event)
    supplementary = resource.get("supplementary_data")
    related = supplementary.get("related_ids") if isinstance(supplementary, dict) else None
    order_id = _text(related.get("order_id")) if isinstance(related, dict) else ""
    if not order_id or not _text(resource.get("id")) or not resource.get("amount"):
        return None
    amount, currency = _money(resource["amount"])
    return Capture(
        order_id=order_id,
        capture_id=resource["id"],
        status=_text(resource.get("status")),
        amount=amount,
        currency=currency,
    )


# An order in these states was never approved by the customer, so nothing was or is being captured.
UNAPPROVED_ORDER_STATUSES = {"CREATED", "PAYER_ACTION_REQUIRED", "VOIDED"}


def order_is_unapproved(*, order_id: str) -> bool:
    """Whether PayPal says the order was never approved (GET /v2/checkout/orders/<id>)."""
    response = _call("GET", f"/v2/checkout/orders/{order_id}", headers=_headers())
    if response.status_code != 200:
        logger.warning("PayPal order %s: %s %s", order_id, response.status_code, response.text[:500])
        raise PaymentProviderError("PayPal could not be reached to confirm the cancellation.")
    return _body(response, "order status").get("status") in UNAPPROVED_ORDER_STATUSES


REFUND_EVENTS = {"PAYMENT.CAPTURE.REFUNDED": False, "PAYMENT.CAPTURE.REVERSED": True}


@dataclass(frozen=True)
class Refund:
    """A refund or reversal of a capture, as a `PAYMENT.CAPTURE.REFUNDED` / `.REVERSED` event carries it."""

    refund_id: str
    capture_id: str
    status: str
    amount: Decimal
    total_refunded: Decimal
    currency: str
    reversal: bool


def _captured_by(links: Any) -> str:
    """The capture id of a refund: its `up` link is `.../v2/payments/captures/<capture id>`."""
    for link in links if isinstance(links, list) else []:
        if isinstance(link, dict) and link.get("rel") == "up":
            parent, _, capture_id = urlparse(str(link.get("href") or "")).path.rstrip("/").rpartition("/")
            if parent.endswith("/captures") and capture_id:
                return capture_id
    return ""


def refund_from_webhook(event: dict) -> Refund | None:
    """The refund of a `PAYMENT.CAPTURE.REFUNDED` or `.REVERSED` event (its resource is a refund).

    The refund has its own id and amount; `seller_payable_breakdown.total_refunded_amount`
    is what went back of the capture so far, this refund and reversals included. Without
    it the refund's own amount is taken as the total (right for a first refund; a later
    one then takes back less, never more).
    """
    reversal = REFUND_EVENTS.get(event.get("event_type"))
    if reversal is None:
        return None
    resource = _resource(event)
    capture_id = _captured_by(resource.get("links"))
    if not _text(resource.get("id")) or not capture_id or not resource.get("amount"):
        return None
    amount, currency = _money(resource["amount"])
    breakdown = resource.get("seller_payable_breakdown")
    total = breakdown.get("total_refunded_amount") if isinstance(breakdown, dict) else None
    if total:
        total_refunded, total_currency = _money(total)
        if total_currency != currency:
            raise MalformedProviderEvent("A PayPal refund's total is in another currency than the refund.")
    else:
        logger.warning("PayPal refund %s without total_refunded_amount: its own amount is taken", resource["id"])
        total_refunded = amount
    return Refund(
        refund_id=resource["id"],
        capture_id=capture_id,
        status=_text(resource.get("status")),
        amount=amount,
        total_refunded=total_refunded,
        currency=currency,
        reversal=reversal,
    )
