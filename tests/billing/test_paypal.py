"""PayPal Orders v2: order, approval, capture on return and the verified webhook, granting once per capture."""

import json
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
import responses
from django.contrib.messages import get_messages
from django.db import connection
from django.utils import timezone

from billing.errors import PaymentProviderError, PromotionAlreadyRedeemed
from billing.models import Promotion, PromotionRedemption, Purchase
from billing.services import (
    _reserve_purchase,
    expire_stale_billing,
    open_dispute,
    record_paypal_capture,
    release_purchase,
    resolve_dispute,
    start_purchase,
)
from core.models import AuditEvent
from credits.models import Transaction
from credits.selectors import get_balance, verify_ledger
from credits.services import spend_credits
from tests.billing.conftest import PAYPAL_BASE, quote_for

ORDER_ID = "5O190127TN364715T"
CAPTURE_ID = "3C679366HH908993F"


@pytest.fixture
def paypal_api(paypal_settings):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(
            "POST",
            f"{PAYPAL_BASE}/v1/oauth2/token",
            json={"access_token": "A21AAF-token", "token_type": "Bearer", "expires_in": 32400},
        )
        mock.add(
            "POST",
            f"{PAYPAL_BASE}/v2/checkout/orders",
            json={
                "id": ORDER_ID,
                "status": "PAYER_ACTION_REQUIRED",
                "links": [
                    {"href": f"https://www.sandbox.paypal.com/checkoutnow?token={ORDER_ID}", "rel": "payer-action"}
                ],
            },
            status=200,
        )
        yield mock


def captured_order(amount: str) -> dict:
    return {
        "id": ORDER_ID,
        "status": "COMPLETED",
        "purchase_units": [
            {
                "reference_id": "1",
                "payments": {
                    "captures": [
                        {"id": CAPTURE_ID, "status": "COMPLETED", "amount": {"currency_code": "USD", "value": amount}}
                    ]
                },
            }
        ],
    }


def webhook_event(amount: str, *, capture_id: str = CAPTURE_ID) -> dict:
    return {
        "id": "WH-58D329510W468432D-8HN650336L201105X",
        "event_type": "PAYMENT.CAPTURE.COMPLETED",
        "resource_type": "capture",
        "resource": {
            "id": capture_id,
            "status": "COMPLETED",
            "amount": {"currency_code": "USD", "value": amount},
            "custom_id": "1",
            "supplementary_data": {"related_ids": {"order_id": ORDER_ID}},
        },
    }


SIGNED_HEADERS = {
    "HTTP_PAYPAL_AUTH_ALGO": "SHA256withRSA",
    "HTTP_PAYPAL_CERT_URL": "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-1",
    "HTTP_PAYPAL_TRANSMISSION_ID": "69cd13f0-d67a-11e5-baa3-778b53f4ae55",
    "HTTP_PAYPAL_TRANSMISSION_SIG": "lmI95Jx3Y9nhR5SJWlHVIWpg4AgFk7n9bCHSRxbrd8A9zrhdu2rMyFrmz+Zjh3s3boXB07VXCXUZy==",
    "HTTP_PAYPAL_TRANSMISSION_TIME": "2026-11-21T10:00:00Z",
}


def start_paypal_purchase(organization, owner, credits: int = 1000) -> Purchase:
    quote = quote_for(organization, credits=credits)
    started = start_purchase(organization=organization, quote_id=quote.pk, provider="paypal", actor=owner)
    assert started.checkout_url == f"https://www.sandbox.paypal.com/checkoutnow?token={ORDER_ID}"
    return started.purchase


@pytest.mark.django_db
def test_an_order_is_created_for_the_quote_total(paypal_api, organization, owner):
    purchase = start_paypal_purchase(organization, owner, credits=5000)

    order_call = next(call for call in paypal_api.calls if call.request.url.endswith("/v2/checkout/orders"))
    body = json.loads(order_call.request.body)
    assert body["intent"] == "CAPTURE"
    assert body["purchase_units"][0]["amount"] == {"currency_code": "USD", "value": "450.00"}
    assert order_call.request.headers["Authorization"] == "Bearer A21AAF-token"
    assert order_call.request.headers["PayPal-Request-Id"] == f"creditdesk-purchase-{purchase.pk}"
    purchase.refresh_from_db()
    assert (purchase.provider_reference, purchase.status) == (ORDER_ID, "pending")


@pytest.mark.django_db
def test_capture_on_return_then_the_webhook_grants_once(
    paypal_api, client, organization, owner, django_capture_on_commit_callbacks, mailoutbox
):
    purchase = start_paypal_purchase(organization, owner)
    paypal_api.add("POST", f"{PAYPAL_BASE}/v2/checkout/orders/{ORDER_ID}/capture", json=captured_order("95.00"))
    paypal_api.add(
        "POST", f"{PAYPAL_BASE}/v1/notifications/verify-webhook-signature", json={"verification_status": "SUCCESS"}
    )
    client.force_login(owner)

    with django_capture_on_commit_callbacks(execute=True):
        returned = client.get(f"/billing/paypal/return?token={ORDER_ID}&PayerID=PAYER1")
        hooked = client.post(
            "/billing/paypal/webhook",
            data=json.dumps(webhook_event("95.00")),
            content_type="application/json",
            **SIGNED_HEADERS,
        )
        again = client.post(
            "/billing/paypal/webhook",
            data=json.dumps(webhook_event("95.00")),
            content_type="application/json",
            **SIGNED_HEADERS,
        )

    assert returned.status_code == 302 and returned["Location"] == f"/billing/purchases/{purchase.pk}/"
    assert (hooked.status_code, again.status_code) == (200, 200)
    assert get_balance(organization_id=organization.pk) == 1000
    assert Transaction.objects.filter(idempotency_key=f"paypal:capture:{CAPTURE_ID}").count() == 1
    assert len(mailoutbox) == 1


@pytest.mark.django_db
def test_the_webhook_first_then_the_return_grants_once(paypal_api, client, organization, owner):
    start_paypal_purchase(organization, owner)
    paypal_api.add(
        "POST", f"{PAYPAL_BASE}/v1/notifications/verify-webhook-signature", json={"verification_status": "SUCCESS"}
    )
    paypal_api.add(
        "POST",
        f"{PAYPAL_BASE}/v2/checkout/orders/{ORDER_ID}/capture",
        status=422,
        json={"name": "UNPROCESSABLE_ENTITY", "details": [{"issue": "ORDER_ALREADY_CAPTURED"}]},
    )
    paypal_api.add("GET", f"{PAYPAL_BASE}/v2/checkout/orders/{ORDER_ID}", json=captured_order("95.00"))
    client.force_login(owner)

    client.post(
        "/billing/paypal/webhook",
        data=json.dumps(webhook_event("95.00")),
        content_type="application/json",
        **SIGNED_HEADERS,
    )
    client.get(f"/billing/paypal/return?token={ORDER_ID}")
    client.get(f"/billing/paypal/return?token={ORDER_ID}")

    assert get_balance(organization_id=organization.pk) == 1000


@pytest.mark.django_db
def test_a_forged_webhook_is_refused_and_grants_nothing(paypal_api, client, organization, owner):
    purchase = start_paypal_purchase(organization, owner)
    paypal_api.add(
        "POST", f"{PAYPAL_BASE}/v1/notifications/verify-webhook-signature", json={"verification_status": "FAILURE"}
    )

    forged = client.post(
        "/billing/paypal/webhook",
        data=json.dumps(webhook_event("95.00")),
        content_type="application/json",
        **SIGNED_HEADERS,
    )
    unsigned = client.post(
        "/billing/paypal/webhook", data=json.dumps(webhook_event("95.00")), content_type="application/json"
    )

    assert (forged.status_code, unsigned.status_code) == (400, 400)
    purchase.refresh_from_db()
    assert (purchase.status, get_balance(organization_id=organization.pk)) == ("pending", 0)
    verify = next(c for c in paypal_api.calls if c.request.url.endswith("verify-webhook-signature"))
    sent = json.loads(verify.request.body)
    assert sent["webhook_id"] == "WH-TEST-1"
    assert sent["webhook_event"]["resource"]["id"] == CAPTURE_ID


@pytest.mark.django_db
def test_a_capture_of_another_amount_grants_nothing(paypal_api, organization, owner):
    purchase = start_paypal_purchase(organization, owner)

    record_paypal_capture(order_id=ORDER_ID, capture_id=CAPTURE_ID, amount=Decimal("0.95"), currency="usd")

    purchase.refresh_from_db()
    assert (purchase.status, get_balance(organization_id=organization.pk)) == ("failed", 0)


@pytest.mark.django_db
def test_paypal_being_down_fails_the_purchase_cleanly(paypal_settings, organization, owner):
    quote = quote_for(organization, credits=1000)
    with responses.RequestsMock() as mock:
        mock.add("POST", f"{PAYPAL_BASE}/v1/oauth2/token", status=503)
        with pytest.raises(PaymentProviderError):
            start_purchase(organization=organization, quote_id=quote.pk, provider="paypal", actor=owner)
    purchase = Purchase.objects.get(quote=quote)
    assert purchase.status == "failed"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_return_and_the_webhook_racing_grant_once(paypal_api, organization, owner):
    purchase = start_paypal_purchase(organization, owner)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def report() -> None:
        try:
            barrier.wait()
            record_paypal_capture(order_id=ORDER_ID, capture_id=CAPTURE_ID, amount=Decimal("95.00"), currency="USD")
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=report) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    purchase.refresh_from_db()
    assert purchase.status == "completed"
    assert get_balance(organization_id=organization.pk) == 1000
    assert Transaction.objects.filter(kind="purchase").count() == 1


# --- Canceled at PayPal's page (PayPal adds the order as `token` to our cancel URL) -------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("order_status", ["PAYER_ACTION_REQUIRED", "CREATED"])
def test_canceling_an_unapproved_order_frees_the_promotion_code(paypal_api, client, organization, owner, order_status):
    from billing.models import Promotion, PromotionRedemption

    Promotion.objects.create(code="SPRING", percent_off=10)
    quote = quote_for(organization, credits=1000, promo_code="SPRING")
    purchase = start_purchase(organization=organization, quote_id=quote.pk, provider="paypal", actor=owner).purchase
    paypal_api.add("GET", f"{PAYPAL_BASE}/v2/checkout/orders/{ORDER_ID}", json={"id": ORDER_ID, "status": order_status})
    client.force_login(owner)

    page = client.get(f"/billing/buy/?canceled=1&token={ORDER_ID}").content.decode()

    assert "The payment was canceled; nothing was charged." in page
    purchase.refresh_from_db()
    assert (purchase.status, purchase.note) == ("expired", "Canceled by the customer at the provider.")
    assert not PromotionRedemption.objects.exists()
    assert quote_for(organization, credits=1000, promo_code="SPRING").promotion is not None


@pytest.mark.django_db
@pytest.mark.parametrize("order_status", ["APPROVED", "COMPLETED"])
def test_an_approved_or_captured_order_is_not_released(paypal_api, client, organization, owner, order_status):
    purchase = start_paypal_purchase(organization, owner)
    paypal_api.add("GET", f"{PAYPAL_BASE}/v2/checkout/orders/{ORDER_ID}", json={"id": ORDER_ID, "status": order_status})
    client.force_login(owner)

    page = client.get(f"/billing/buy/?canceled=1&token={ORDER_ID}").content.decode()

    assert "This payment is still being processed" in page
    purchase.refresh_from_db()
    assert purchase.status == "pending"


@pytest.mark.django_db
def test_paypal_unreachable_on_cancel_releases_nothing(paypal_api, client, organization, owner):
    purchase = start_paypal_purchase(organization, owner)
    paypal_api.add("GET", f"{PAYPAL_BASE}/v2/checkout/orders/{ORDER_ID}", status=503, json={})
    client.force_login(owner)

    page = client.get(f"/billing/buy/?canceled=1&token={ORDER_ID}").content.decode()

    assert "PayPal could not be reached to confirm the cancellation." in page
    purchase.refresh_from_db()
    assert purchase.status == "pending"


# --- Refunds and reversals -----------------------------------------------------------------


def refund_event(
    refund_id: str,
    amount: str,
    total: str | None,
    *,
    event_type: str = "PAYMENT.CAPTURE.REFUNDED",
    capture_id: str = CAPTURE_ID,
    status: str = "COMPLETED",
) -> dict:
    """A refund of the capture as PayPal sends it: its own id and amount, the running total, an `up` link."""
    resource = {
        "id": refund_id,
        "status": status,
        "amount": {"currency_code": "USD", "value": amount},
        "links": [
            {"href": f"https://api.sandbox.paypal.com/v2/payments/refunds/{refund_id}", "rel": "self", "method": "GET"},
            {"href": f"https://api.sandbox.paypal.com/v2/payments/captures/{capture_id}", "rel": "up", "method": "GET"},
        ],
    }
    if total is not None:
        resource["seller_payable_breakdown"] = {
            "gross_amount": {"currency_code": "USD", "value": amount},
            "total_refunded_amount": {"currency_code": "USD", "value": total},
        }
    return {
        "id": f"WH-{refund_id}",
        "event_type": event_type,
        "resource_type": "refund",
        "resource_version": "2.0",
        "resource": resource,
    }


@pytest.fixture
def paid_paypal_purchase(paypal_api, organization, owner) -> Purchase:
    """1,000 credits paid $95.00 through PayPal; PayPal's verification answers SUCCESS from here on."""
    purchase = start_paypal_purchase(organization, owner)
    record_paypal_capture(order_id=ORDER_ID, capture_id=CAPTURE_ID, amount=Decimal("95.00"), currency="USD")
    paypal_api.add(
        "POST", f"{PAYPAL_BASE}/v1/notifications/verify-webhook-signature", json={"verification_status": "SUCCESS"}
    )
    purchase.refresh_from_db()
    assert (purchase.status, purchase.provider_payment_id) == ("completed", CAPTURE_ID)
    assert get_balance(organization_id=organization.pk) == 1000
    return purchase


def deliver_paypal(client, event: dict):
    return client.post(
        "/billing/paypal/webhook", data=json.dumps(event), content_type="application/json", **SIGNED_HEADERS
    )


@pytest.mark.django_db
def test_a_full_refund_takes_the_credits_back_once(paid_paypal_purchase, client, organization):
    event = refund_event("1Y107995YT783435V", "95.00", "95.00")

    answers = [deliver_paypal(client, event) for _ in range(2)]

    assert [a.json() for a in answers] == [{"received": True, "purchase": paid_paypal_purchase.pk}] * 2
    purchase = Purchase.objects.get(pk=paid_paypal_purchase.pk)
    assert (purchase.status, purchase.refunded_amount) == ("refunded", Decimal("95.00"))
    assert (purchase.credits_reclaimed, purchase.credits_shortfall) == (1000, 0)
    assert get_balance(organization_id=organization.pk) == 0
    refund = Transaction.objects.get(kind=Transaction.Kind.REFUND)
    assert refund.idempotency_key == f"paypal:refund:{CAPTURE_ID}:9500"
    assert refund.metadata["refundId"] == "1Y107995YT783435V"
    assert verify_ledger().ok


@pytest.mark.django_db
def test_partial_refunds_count_by_paypals_running_total_in_any_order(paid_paypal_purchase, client, organization):
    quarter = refund_event("REFUND-1", "23.75", "23.75")
    half = refund_event("REFUND-2", "23.75", "47.50")

    for event in (half, quarter, half, quarter):
        assert deliver_paypal(client, event).status_code == 200

    purchase = Purchase.objects.get(pk=paid_paypal_purchase.pk)
    assert (purchase.status, purchase.refunded_amount) == ("partially_refunded", Decimal("47.50"))
    assert (purchase.credits_reclaimed, get_balance(organization_id=organization.pk)) == (500, 500)
    assert Transaction.objects.filter(kind=Transaction.Kind.REFUND).count() == 1  # the quarter came too late
    assert verify_ledger().ok


@pytest.mark.django_db
def test_a_refund_of_spent_credits_records_the_shortfall(paid_paypal_purchase, client, organization):
    spend_credits(organization=organization, amount=800, reason="usage", idempotency_key="t:paypal-spend")

    deliver_paypal(client, refund_event("REFUND-1", "95.00", "95.00"))

    purchase = Purchase.objects.get(pk=paid_paypal_purchase.pk)
    assert (purchase.credits_reclaimed, purchase.credits_shortfall) == (200, 800)
    assert get_balance(organization_id=organization.pk) == 0
    assert AuditEvent.objects.filter(event="refund_shortfall", target=f"purchase:{purchase.pk}").count() == 1


@pytest.mark.django_db
def test_a_refund_without_paypals_running_total_counts_its_own_amount(paid_paypal_purchase, client, organization):
    deliver_paypal(client, refund_event("REFUND-1", "47.50", None))
    deliver_paypal(client, refund_event("REFUND-1", "47.50", None))

    purchase = Purchase.objects.get(pk=paid_paypal_purchase.pk)
    assert (purchase.refunded_amount, get_balance(organization_id=organization.pk)) == (Decimal("47.50"), 500)


@pytest.mark.django_db
def test_a_reversal_takes_the_credits_back_counted_with_refunds(paid_paypal_purchase, client, organization):
    refunded = refund_event("REFUND-1", "23.75", "23.75")
    reversed_ = refund_event("REVERSAL-1", "71.25", "95.00", event_type="PAYMENT.CAPTURE.REVERSED")

    for event in (refunded, reversed_, reversed_, refunded):
        assert deliver_paypal(client, event).status_code == 200

    purchase = Purchase.objects.get(pk=paid_paypal_purchase.pk)
    assert get_balance(organization_id=organization.pk) == 0
    assert (purchase.credits_reclaimed, purchase.credits_shortfall) == (1000, 0)
    assert (purchase.status, purchase.refunded_amount) == ("refunded", Decimal("95.00"))
    assert purchase.note == "Reversed by PayPal (REVERSAL-1): 95.00 USD taken back in total."
    assert AuditEvent.objects.filter(event="payment_reversed", target=f"purchase:{purchase.pk}").count() == 1
    assert Transaction.objects.filter(kind=Transaction.Kind.REFUND).count() == 2
    assert verify_ledger().ok


@pytest.mark.django_db
def test_a_refund_after_a_dispute_payout_takes_the_payout_back_too(paid_paypal_purchase, client, organization, staff):
    dispute = open_dispute(purchase=paid_paypal_purchase, reason="The credits never showed up.")
    resolve_dispute(dispute=dispute, resolution="Given back in credits.", refund_credits=1000, actor=staff)
    assert get_balance(organization_id=organization.pk) == 2000

    deliver_paypal(client, refund_event("REFUND-1", "95.00", "95.00"))

    purchase = Purchase.objects.get(pk=paid_paypal_purchase.pk)
    assert (purchase.credits_reclaimed, get_balance(organization_id=organization.pk)) == (2000, 0)
    assert verify_ledger().ok


@pytest.mark.django_db
def test_a_refund_before_its_capture_is_recorded_waits_for_it(paypal_api, client, organization, owner):
    """Found in review: a refund delivered before the capture's own completion was acknowledged
    and dropped, and the late completion then granted every credit. PayPal webhooks are per
    app, so every capture is ours: a 409 makes PayPal deliver the refund again."""
    purchase = start_paypal_purchase(organization, owner)
    paypal_api.add(
        "POST", f"{PAYPAL_BASE}/v1/notifications/verify-webhook-signature", json={"verification_status": "SUCCESS"}
    )
    event = refund_event("REFUND-9", "95.00", "95.00")

    early = deliver_paypal(client, event)

    assert (early.status_code, early.json()["error"]) == (409, "payment_not_recorded")
    assert get_balance(organization_id=organization.pk) == 0
    record_paypal_capture(order_id=ORDER_ID, capture_id=CAPTURE_ID, amount=Decimal("95.00"), currency="USD")
    assert get_balance(organization_id=organization.pk) == 1000

    again = deliver_paypal(client, event)

    assert again.json() == {"received": True, "purchase": purchase.pk}
    assert get_balance(organization_id=organization.pk) == 0
    assert Purchase.objects.get(pk=purchase.pk).status == "refunded"


@pytest.mark.django_db
def test_a_refund_not_completed_yet_changes_nothing(paid_paypal_purchase, client, organization):
    answer = deliver_paypal(client, refund_event("REFUND-1", "95.00", "95.00", status="PENDING"))

    assert answer.json() == {"received": True, "ignored": True}
    assert get_balance(organization_id=organization.pk) == 1000
    assert Purchase.objects.get(pk=paid_paypal_purchase.pk).refunded_amount == Decimal("0.00")


# --- Answers and events PayPal did not send as documented -------------------------------------

HTML_ERROR = "<html><body><h1>502 Bad Gateway</h1></body></html>"


@pytest.mark.django_db
def test_a_token_answer_that_is_not_json_is_the_providers_502_through_the_api(paypal_settings, client, owner):
    client.force_login(owner)
    quote = client.post("/api/credits/purchase/validate", {"credits": 1000}, content_type="application/json").json()
    with responses.RequestsMock() as mock:
        mock.add("POST", f"{PAYPAL_BASE}/v1/oauth2/token", body=HTML_ERROR, status=200, content_type="text/html")

        response = client.post(
            "/api/credits/purchase",
            {"quoteId": quote["quoteId"], "provider": "paypal"},
            content_type="application/json",
        )

    assert (response.status_code, response.json()["error"]) == (502, "payment_provider_error")
    assert Purchase.objects.get(quote_id=quote["quoteId"]).status == "failed"


@pytest.mark.django_db
def test_an_order_answer_that_is_not_json_fails_the_purchase_cleanly_from_the_portal(
    paypal_settings, client, organization, owner
):
    quote = quote_for(organization, credits=1000)
    client.force_login(owner)
    with responses.RequestsMock() as mock:
        mock.add("POST", f"{PAYPAL_BASE}/v1/oauth2/token", json={"access_token": "A21AAF-token", "expires_in": 32400})
        mock.add("POST", f"{PAYPAL_BASE}/v2/checkout/orders", body=HTML_ERROR, status=201, content_type="text/html")

        response = client.post("/billing/buy/pay", {"quote_id": str(quote.pk), "provider": "paypal"})

    assert (response.status_code, response["Location"]) == (302, "/billing/buy/")
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert messages == [PaymentProviderError.default_message]
    assert Purchase.objects.get(quote=quote).status == "failed"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "answer",
    [
        {"body": HTML_ERROR, "content_type": "text/html"},
        {"json": ["not", "an", "object"]},
        {"json": {"token_type": "Bearer"}},
    ],
)
def test_any_unusable_token_answer_is_the_providers_error(paypal_settings, answer):
    from billing import paypal

    with responses.RequestsMock() as mock:
        mock.add("POST", f"{PAYPAL_BASE}/v1/oauth2/token", status=200, **answer)
        with pytest.raises(PaymentProviderError):
            paypal.access_token()


@pytest.mark.django_db
def test_a_capture_answer_that_is_not_json_is_a_message_on_return(paypal_api, client, organization, owner):
    purchase = start_paypal_purchase(organization, owner)
    paypal_api.add(
        "POST",
        f"{PAYPAL_BASE}/v2/checkout/orders/{ORDER_ID}/capture",
        body=HTML_ERROR,
        status=201,
        content_type="text/html",
    )
    client.force_login(owner)

    response = client.get(f"/billing/paypal/return?token={ORDER_ID}")

    assert (response.status_code, response["Location"]) == (302, "/billing/purchases/")
    purchase.refresh_from_db()
    assert (purchase.status, get_balance(organization_id=organization.pk)) == ("pending", 0)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "resource",
    [
        "a string",
        ["a", "list"],
        {
            "id": CAPTURE_ID,
            "status": "COMPLETED",
            "amount": {"currency_code": "USD", "value": "ninety-five"},
            "supplementary_data": {"related_ids": {"order_id": ORDER_ID}},
        },
        {
            "id": CAPTURE_ID,
            "status": "COMPLETED",
            "amount": {"currency_code": "USD", "value": 95},
            "supplementary_data": {"related_ids": {"order_id": ORDER_ID}},
        },
        {
            "id": CAPTURE_ID,
            "status": "COMPLETED",
            "amount": "95.00",
            "supplementary_data": {"related_ids": {"order_id": ORDER_ID}},
        },
    ],
    ids=["string", "list", "words", "json-number", "amount-string"],
)
def test_a_verified_capture_event_that_cannot_be_read_is_a_400_and_changes_nothing(
    paypal_api, client, organization, owner, resource
):
    purchase = start_paypal_purchase(organization, owner)
    paypal_api.add(
        "POST", f"{PAYPAL_BASE}/v1/notifications/verify-webhook-signature", json={"verification_status": "SUCCESS"}
    )
    event = {**webhook_event("95.00"), "resource": resource}

    response = deliver_paypal(client, event)

    assert response.status_code == 400
    purchase.refresh_from_db()
    assert (purchase.status, get_balance(organization_id=organization.pk)) == ("pending", 0)
    assert not Transaction.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("total", ["NaN", "lots", "-95.00"])
def test_a_verified_refund_event_that_cannot_be_read_is_a_400_and_changes_nothing(
    paid_paypal_purchase, client, organization, total
):
    response = deliver_paypal(client, refund_event("REFUND-1", "95.00", total))
    not_an_object = deliver_paypal(client, {**refund_event("REFUND-1", "95.00", "95.00"), "resource": 7})

    assert (response.status_code, not_an_object.status_code) == (400, 400)
    purchase = Purchase.objects.get(pk=paid_paypal_purchase.pk)
    assert (purchase.status, purchase.refunded_amount) == ("completed", Decimal("0.00"))
    assert get_balance(organization_id=organization.pk) == 1000


@pytest.mark.django_db
def test_a_verification_answer_that_is_not_json_is_refused(paypal_api, client, organization, owner):
    purchase = start_paypal_purchase(organization, owner)
    paypal_api.add(
        "POST",
        f"{PAYPAL_BASE}/v1/notifications/verify-webhook-signature",
        body=HTML_ERROR,
        status=200,
        content_type="text/html",
    )

    response = deliver_paypal(client, webhook_event("95.00"))

    assert response.status_code == 400
    purchase.refresh_from_db()
    assert (purchase.status, get_balance(organization_id=organization.pk)) == ("pending", 0)


# --- A capture completing after the purchase expired -------------------------------------------


def pending_then_expired(paypal_api, client, organization, owner, *, promo_code: str, **promotion) -> Purchase:
    """The outside check's case: PayPal answers the capture PENDING, and a day later the purchase expires."""
    Promotion.objects.create(code=promo_code, **promotion)
    quote = quote_for(organization, credits=100, promo_code=promo_code)
    purchase = start_purchase(organization=organization, quote_id=quote.pk, provider="paypal", actor=owner).purchase
    pending = captured_order(f"{purchase.amount}")
    pending["purchase_units"][0]["payments"]["captures"][0]["status"] = "PENDING"
    paypal_api.add("POST", f"{PAYPAL_BASE}/v2/checkout/orders/{ORDER_ID}/capture", json=pending)
    paypal_api.add(
        "POST", f"{PAYPAL_BASE}/v1/notifications/verify-webhook-signature", json={"verification_status": "SUCCESS"}
    )
    client.force_login(owner)
    client.get(f"/billing/paypal/return?token={ORDER_ID}")
    assert PromotionRedemption.objects.filter(purchase=purchase).exists()

    expire_stale_billing(now=timezone.now() + timedelta(hours=25))

    purchase.refresh_from_db()
    assert (purchase.status, purchase.note, get_balance(organization_id=organization.pk)) == (
        "expired",
        "Never paid.",
        0,
    )
    assert not PromotionRedemption.objects.filter(purchase=purchase).exists()
    return purchase


@pytest.mark.django_db
def test_a_capture_completed_after_expiry_grants_once_and_takes_the_promotion_again(
    paypal_api, client, organization, owner
):
    purchase = pending_then_expired(paypal_api, client, organization, owner, promo_code="BONUS50", bonus_credits=50)

    for _ in range(2):
        assert deliver_paypal(client, webhook_event(f"{purchase.amount}")).status_code == 200

    purchase.refresh_from_db()
    assert (purchase.status, purchase.credits, get_balance(organization_id=organization.pk)) == ("completed", 150, 150)
    assert purchase.note == "Paid after it had expired. BONUS50 redeemed again."
    assert PromotionRedemption.objects.get(promotion__code="BONUS50").purchase == purchase
    with pytest.raises(PromotionAlreadyRedeemed):
        quote_for(organization, credits=100, promo_code="BONUS50")
    assert verify_ledger().ok


@pytest.mark.django_db
def test_a_late_capture_of_a_promotion_used_up_meanwhile_is_granted_without_the_bonus(
    paypal_api, client, organization, owner, outsider
):
    purchase = pending_then_expired(
        paypal_api, client, organization, owner, promo_code="BONUS50", bonus_credits=50, max_redemptions=1
    )
    # Freed by the expiry, the last redemption goes to another organization.
    other = outsider.membership.organization
    PromotionRedemption.objects.create(promotion=Promotion.objects.get(code="BONUS50"), organization=other)

    deliver_paypal(client, webhook_event(f"{purchase.amount}"))

    purchase.refresh_from_db()
    assert (purchase.status, purchase.credits, get_balance(organization_id=organization.pk)) == ("completed", 100, 100)
    assert purchase.note == (
        "Paid after it had expired. Granted without the 50 bonus credits of BONUS50: "
        "This promotion code has reached its maximum number of redemptions."
    )
    assert PromotionRedemption.objects.filter(promotion__code="BONUS50").count() == 1
    assert not Transaction.objects.filter(kind=Transaction.Kind.PROMOTION).exists()
    assert AuditEvent.objects.filter(event="promotion_not_redeemed", target=f"purchase:{purchase.pk}").exists()
    assert verify_ledger().ok


@pytest.mark.django_db
def test_a_late_capture_after_the_organization_used_the_promotion_again_keeps_one_redemption(
    paypal_api, client, organization, owner
):
    purchase = pending_then_expired(paypal_api, client, organization, owner, promo_code="TENOFF", percent_off=10)
    later = _reserve_purchase(
        organization=organization,
        quote_id=quote_for(organization, credits=100, promo_code="TENOFF").pk,
        provider="sandbox",
        actor=owner,
    )

    deliver_paypal(client, webhook_event(f"{purchase.amount}"))

    purchase.refresh_from_db()
    assert (purchase.status, purchase.credits, get_balance(organization_id=organization.pk)) == ("completed", 100, 100)
    assert purchase.note == (
        "Paid after it had expired. Paid at the TENOFF discount, which could not be redeemed again: "
        "Your organization has already used this promotion code."
    )
    assert PromotionRedemption.objects.get(promotion__code="TENOFF").purchase == later


@pytest.mark.django_db
def test_the_return_from_a_released_order_captures_nothing(paypal_api, client, organization, owner):
    """Found in review: an order canceled here (its promotion freed for another purchase) could
    still be approved in another tab and was then captured, at the discount, a second time."""
    purchase = start_paypal_purchase(organization, owner)
    release_purchase(purchase_id=purchase.pk, status="expired", note="Canceled by the customer at the provider.")
    client.force_login(owner)

    response = client.get(f"/billing/paypal/return?token={ORDER_ID}")

    assert response["Location"] == "/billing/buy/"
    assert not any(call.request.url.endswith("/capture") for call in paypal_api.calls)
    assert get_balance(organization_id=organization.pk) == 0


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/billing/buy/?canceled=1&purchase=²", "/billing/checkout/return?purchase=²"])
def test_a_purchase_id_that_is_not_ascii_digits_is_no_500(client, organization, owner, path):
    client.force_login(owner)

    assert client.get(path).status_code in (200, 302)
