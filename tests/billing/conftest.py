"""Billing fixtures: pricing data, a signed Stripe webhook endpoint, Stripe's and PayPal's HTTP APIs mocked.

No test reaches the network: `responses` answers every request to api.stripe.com and to
PayPal's API base; an unexpected request fails the test.
"""

import hashlib
import hmac
import importlib
import itertools
import json
import re
import time
from typing import Any

import pytest
import responses
from django.apps import apps as django_apps
from django.test import Client

STRIPE_SECRET = "whsec_test_creditdesk_0123456789"
PAYPAL_BASE = "https://paypal.test"
_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def _pricing_data(request):
    uses_db = request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(request.fixturenames)
    if uses_db:
        request.getfixturevalue("_django_db_helper")
        importlib.import_module("billing.migrations.0004_install_pricing").install_pricing(django_apps, None)
    yield


def new_id(prefix: str) -> str:
    return f"{prefix}_test{next(_ids):06d}"


def stripe_signature(payload: str, *, secret: str = STRIPE_SECRET, timestamp: int | None = None) -> str:
    """`Stripe-Signature` computed as Stripe does: t=<unix>,v1=HMAC-SHA256(secret, "<t>.<payload>")."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def stripe_event(event_type: str, obj: dict, *, event_id: str | None = None) -> dict:
    return {
        "id": event_id or new_id("evt"),
        "object": "event",
        "api_version": "2026-05-27.dahlia",
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


class FakeStripe:
    """The few Stripe API endpoints dj-stripe and billing call, answered from an in-memory store."""

    COLLECTIONS = {
        "checkout/sessions": "checkout.session",
        "customers": "customer",
        "subscriptions": "subscription",
        "invoices": "invoice",
        "charges": "charge",
        "disputes": "dispute",
        "payment_intents": "payment_intent",
        "prices": "price",
        "products": "product",
        "billing_portal/sessions": "billing_portal.session",
    }

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.objects: dict[str, dict] = {}
        self.requests: list[tuple[str, str, dict]] = []
        pattern = re.compile(r"https://api\.stripe\.com/v1/.*")
        for method in ("GET", "POST", "DELETE"):
            mock.add_callback(method, pattern, callback=self._handle)

    def put(self, obj: dict) -> dict:
        self.objects[obj["id"]] = obj
        return obj

    def _handle(self, request) -> tuple[int, dict, str]:
        from urllib.parse import parse_qs, urlparse

        url = urlparse(request.url)
        path = url.path.removeprefix("/v1/")
        body = parse_qs(request.body if isinstance(request.body, str) else (request.body or b"").decode())
        self.requests.append((request.method, path, body))
        if path == "account":
            account = {"id": "acct_creditdesk", "object": "account", "livemode": False, "created": 1700000000}
            return 200, {}, json.dumps({**account, "settings": {}, "business_profile": {}, "metadata": {}})
        for collection in sorted(self.COLLECTIONS, key=len, reverse=True):
            if path == collection:
                if request.method == "POST":
                    return self._create(collection, body)
                return 200, {}, json.dumps({"object": "list", "data": [], "has_more": False, "url": f"/v1/{path}"})
            if path.startswith(collection + "/"):
                rest = path[len(collection) + 1 :].split("/")
                obj = self.objects.get(rest[0])
                if obj is None:
                    error = {
                        "error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such"}
                    }
                    return 404, {}, json.dumps(error)
                if rest[1:] == ["expire"] and request.method == "POST":
                    return self._expire(obj)
                if len(rest) > 1:  # sub-lists such as /invoices/in_1/lines
                    return 200, {}, json.dumps({"object": "list", "data": [], "has_more": False, "url": url.path})
                if request.method == "POST":
                    self._update(obj, body)
                return 200, {}, json.dumps(obj)
        return 200, {}, json.dumps({"object": "list", "data": [], "has_more": False, "url": url.path})

    def _create(self, collection: str, body: dict) -> tuple[int, dict, str]:
        if collection == "checkout/sessions":
            session_id = new_id("cs")
            obj = self.put(
                {
                    "id": session_id,
                    "object": "checkout.session",
                    "mode": body.get("mode", ["payment"])[0],
                    "status": "open",
                    "cancel_url": body.get("cancel_url", [""])[0],
                    "url": f"https://checkout.stripe.test/c/pay/{session_id}",
                    "livemode": False,
                    "created": int(time.time()),
                    "metadata": {},
                    "customer": None,
                    "payment_intent": None,
                    "subscription": None,
                }
            )
            return 200, {}, json.dumps(obj)
        if collection == "billing_portal/sessions":
            return 200, {}, json.dumps({"id": new_id("bps"), "url": "https://billing.stripe.test/session/x"})
        return 400, {}, json.dumps({"error": {"type": "invalid_request_error", "message": "not faked"}})

    def _expire(self, obj: dict) -> tuple[int, dict, str]:
        """Stripe expires only an open Checkout Session."""
        if obj.get("status") != "open":
            message = f"Only Checkout Sessions with a status of open can be expired (status: {obj.get('status')})."
            return 400, {}, json.dumps({"error": {"type": "invalid_request_error", "message": message}})
        obj["status"] = "expired"
        return 200, {}, json.dumps(obj)

    def _update(self, obj: dict, body: dict) -> None:
        if "cancel_at_period_end" in body:
            obj["cancel_at_period_end"] = body["cancel_at_period_end"][0] == "true"

    def posted(self, path: str) -> list[dict]:
        return [body for method, p, body in self.requests if method == "POST" and p == path]


@pytest.fixture
def stripe_keys(settings):
    settings.STRIPE_SECRET_KEY = "sk_test_creditdesk0123456789abcdefghij"
    return settings


@pytest.fixture
def fake_stripe(stripe_keys):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeStripe(mock)


@pytest.fixture
def stripe_endpoint(db):
    from billing.services import install_stripe_webhook_endpoint

    return install_stripe_webhook_endpoint(secret=STRIPE_SECRET)


@pytest.fixture
def deliver(stripe_endpoint):
    """POST an event to dj-stripe's endpoint, signed like Stripe (or not); returns the response."""
    client = Client(raise_request_exception=False)
    url = f"/stripe/webhook/{stripe_endpoint.djstripe_uuid}/"

    def send(event: dict, *, secret: str = STRIPE_SECRET, timestamp: int | None = None, signature: str | None = None):
        payload = json.dumps(event)
        header = signature if signature is not None else stripe_signature(payload, secret=secret, timestamp=timestamp)
        return client.post(url, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)

    return send


@pytest.fixture
def paypal_settings(settings):
    settings.PAYPAL_CLIENT_ID = "paypal-client"
    settings.PAYPAL_CLIENT_SECRET = "paypal-secret"
    settings.PAYPAL_WEBHOOK_ID = "WH-TEST-1"
    settings.PAYPAL_API_BASE = PAYPAL_BASE
    return settings


def _without_payment_keys(settings, *, debug: bool):
    settings.DEBUG = debug
    settings.STRIPE_SECRET_KEY = ""
    settings.PAYPAL_CLIENT_ID = ""
    return settings


@pytest.fixture
def sandbox(settings):
    """No payment keys and DEBUG on: the demo sandbox is the provider."""
    return _without_payment_keys(settings, debug=True)


@pytest.fixture
def no_payment_method(settings):
    """No payment keys and DEBUG off: no provider at all."""
    return _without_payment_keys(settings, debug=False)


def quote_for(organization: Any, **kwargs: Any):
    from billing.services import create_quote

    return create_quote(organization=organization, **kwargs)
