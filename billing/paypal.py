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
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

import requests
from django.conf import settings
from django.core.cache import cache
from django.urls import reverse

from billing.errors import PaymentProviderError
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
    body = response.json()
    cache.set(TOKEN_CACHE_KEY, body["access_token"], max(60, int(body.get("expires_in", 3600)) - 120))
    return body["access_token"]


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
    order = response.json()
    approve = next(
        (link["href"] for link in order.get("links", []) if link.get("rel") in ("payer-action", "approve")), None
    )
    if not approve:
        raise PaymentProviderError("PayPal did not return an approval link.")
    return order["id"], approve


@dataclass(frozen=True)
class Capture:
    order_id: str
    capture_id: str
    status: str
    amount: Decimal
    currency: str


def _capture_from_order(order: dict) -> Capture | None:
    for unit in order.get("purchase_units", []):
        for capture in (unit.get("payments") or {}).get("captures", []):
            return Capture(
                order_id=order["id"],
                capture_id=capture["id"],
                status=capture.get("status", ""),
                amount=Decimal(capture["amount"]["value"]),
                currency=capture["amount"]["currency_code"].lower(),
            )
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
    return _capture_from_order(response.json())


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
    return response.status_code == 200 and response.json().get("verification_status") == "SUCCESS"


def capture_from_webhook(event: dict) -> Capture | None:
    """The capture of a `PAYMENT.CAPTURE.COMPLETED` event."""
    if event.get("event_type") != "PAYMENT.CAPTURE.COMPLETED":
        return None
    resource = event.get("resource") or {}
    order_id = ((resource.get("supplementary_data") or {}).get("related_ids") or {}).get("order_id")
    if not order_id or not resource.get("id") or not resource.get("amount"):
        return None
    return Capture(
        order_id=order_id,
        capture_id=resource["id"],
        status=resource.get("status", ""),
        amount=Decimal(resource["amount"]["value"]),
        currency=resource["amount"]["currency_code"].lower(),
    )


# An order in these states was never approved by the customer, so nothing was or is being captured.
UNAPPROVED_ORDER_STATUSES = {"CREATED", "PAYER_ACTION_REQUIRED", "VOIDED"}


def order_is_unapproved(*, order_id: str) -> bool:
    """Whether PayPal says the order was never approved (GET /v2/checkout/orders/<id>)."""
    response = _call("GET", f"/v2/checkout/orders/{order_id}", headers=_headers())
    if response.status_code != 200:
        logger.warning("PayPal order %s: %s %s", order_id, response.status_code, response.text[:500])
        raise PaymentProviderError("PayPal could not be reached to confirm the cancellation.")
    return response.json().get("status") in UNAPPROVED_ORDER_STATUSES


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
    resource = event.get("resource") or {}
    amount = resource.get("amount") or {}
    capture_id = _captured_by(resource.get("links"))
    if not resource.get("id") or not capture_id or not amount:
        return None
    total = (resource.get("seller_payable_breakdown") or {}).get("total_refunded_amount")
    if not total:
        logger.warning("PayPal refund %s without total_refunded_amount: its own amount is taken", resource["id"])
        total = amount
    return Refund(
        refund_id=resource["id"],
        capture_id=capture_id,
        status=resource.get("status", ""),
        amount=Decimal(amount["value"]),
        total_refunded=Decimal(total["value"]),
        currency=amount["currency_code"].lower(),
        reversal=reversal,
    )
