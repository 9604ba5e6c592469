"""The customer billing API: quotes, purchases, the sandbox, balance, history and the subscription."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from apikeys.services import issue_api_key
from billing.models import Promotion, PromotionRedemption, Purchase, Quote
from credits.selectors import get_balance
from credits.services import grant_credits, spend_credits

pytestmark = pytest.mark.django_db


def post(client, path, body, **extra):
    return client.post(path, body, content_type="application/json", **extra)


@pytest.fixture
def signed_in(client, owner):
    client.force_login(owner)
    return client


def quote(client, **body) -> dict:
    response = post(client, "/api/credits/purchase/validate", body)
    assert response.status_code == 200, response.json()
    return response.json()


def test_validate_returns_a_stored_quote_with_its_breakdown(signed_in, organization):
    Promotion.objects.create(code="SPRING", percent_off=20)

    body = quote(signed_in, credits=5000, promoCode="spring")

    assert set(body) == {
        "quoteId",
        "credits",
        "bonusCredits",
        "subtotal",
        "discounts",
        "total",
        "currency",
        "expiresAt",
    }
    assert (body["credits"], body["bonusCredits"], body["subtotal"], body["total"], body["currency"]) == (
        5000,
        0,
        "500.00",
        "360.00",
        "usd",
    )
    assert [line["kind"] for line in body["discounts"]] == ["bulk", "promotion"]
    assert Quote.objects.get(pk=body["quoteId"]).organization == organization


def test_validate_prices_a_pack(signed_in):
    packs = signed_in.get("/api/credits/packages").json()["packages"]
    small = next(pack for pack in packs if pack["name"] == "Small pack")

    body = quote(signed_in, packageId=small["id"])

    assert (body["credits"], body["total"], body["discounts"]) == (100, "9.00", [])


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"credits": "100"},
        {"credits": 100.0},
        {"credits": True},
        {"credits": None},
        {"credits": 100, "packageId": 1},
        {"packageId": "1"},
        {"packageId": 0},
        {"credits": 100, "promoCode": 5},
        {"credits": 100, "promoCode": "X" * 41},
        [1, 2],
    ],
)
def test_validate_refuses_malformed_bodies(signed_in, body):
    response = post(signed_in, "/api/credits/purchase/validate", body)
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"
    assert not Quote.objects.exists()


@pytest.mark.parametrize(("credits", "code"), [(5, "invalid_credit_amount"), (2_000_000, "invalid_credit_amount")])
def test_validate_refuses_amounts_out_of_range(signed_in, credits, code):
    response = post(signed_in, "/api/credits/purchase/validate", {"credits": credits})
    assert (response.status_code, response.json()["error"]) == (400, code)


def test_validate_refuses_promotions_outside_their_window_or_over_their_limit(signed_in, organization, outsider):
    now = timezone.now()
    Promotion.objects.create(code="OVER", percent_off=10, starts_at=now - timedelta(days=9), ends_at=now)
    full = Promotion.objects.create(code="FULL", percent_off=10, max_redemptions=1)
    PromotionRedemption.objects.create(promotion=full, organization=outsider.membership.organization)

    expired = post(signed_in, "/api/credits/purchase/validate", {"credits": 100, "promoCode": "OVER"})
    exhausted = post(signed_in, "/api/credits/purchase/validate", {"credits": 100, "promoCode": "FULL"})
    unknown = post(signed_in, "/api/credits/purchase/validate", {"credits": 100, "promoCode": "NOPE"})

    assert (expired.status_code, expired.json()["error"]) == (400, "promo_not_active")
    assert (exhausted.status_code, exhausted.json()["error"]) == (409, "promo_exhausted")
    assert (unknown.status_code, unknown.json()["error"]) == (400, "promo_invalid")


def test_validate_needs_authentication(client):
    response = post(client, "/api/credits/purchase/validate", {"credits": 100})
    assert (response.status_code, response.json()["error"]) == (401, "not_authenticated")


def test_an_api_key_works_on_the_customer_api(client, owner, organization):
    _, raw = issue_api_key(organization=organization, created_by=owner, name="billing")

    response = client.get("/api/credits/balance", HTTP_AUTHORIZATION=f"Bearer {raw}")

    assert response.status_code == 200
    assert response.json()["orgId"] == organization.pk


# --- Purchase -----------------------------------------------------------------------------------


def test_the_sandbox_completes_a_purchase_at_once_through_the_grant_path(
    sandbox, signed_in, organization, django_capture_on_commit_callbacks, mailoutbox
):
    grant_credits(organization=organization, amount=50, reason="start", idempotency_key="t:start")
    body = quote(signed_in, credits=1000)

    with django_capture_on_commit_callbacks(execute=True):
        response = post(signed_in, "/api/credits/purchase", {"quoteId": body["quoteId"], "provider": "sandbox"})

    assert response.status_code == 200
    assert response.json() == {"success": True, "credits": 1000, "remainingCredits": 1050}
    purchase = Purchase.objects.get(quote_id=body["quoteId"])
    assert (purchase.status, purchase.provider, str(purchase.amount)) == ("completed", "sandbox", "95.00")
    assert purchase.ledger_transaction.idempotency_key == f"sandbox:purchase:{purchase.pk}"
    assert len(mailoutbox) == 1


def test_a_bonus_promotion_grants_its_credits_with_the_purchase_and_only_once(sandbox, signed_in, organization):
    Promotion.objects.create(code="BONUS", bonus_credits=25)
    first = quote(signed_in, credits=100, promoCode="BONUS")
    response = post(signed_in, "/api/credits/purchase", {"quoteId": first["quoteId"], "provider": "sandbox"})

    assert response.json()["credits"] == 125
    assert get_balance(organization_id=organization.pk) == 125
    again = post(signed_in, "/api/credits/purchase/validate", {"credits": 100, "promoCode": "BONUS"})
    assert (again.status_code, again.json()["error"]) == (409, "promo_already_redeemed")


def test_two_open_quotes_with_one_promotion_redeem_it_once(sandbox, signed_in, organization):
    Promotion.objects.create(code="ONCE", percent_off=50)
    first = quote(signed_in, credits=100, promoCode="ONCE")
    second = quote(signed_in, credits=100, promoCode="ONCE")

    ok = post(signed_in, "/api/credits/purchase", {"quoteId": first["quoteId"], "provider": "sandbox"})
    refused = post(signed_in, "/api/credits/purchase", {"quoteId": second["quoteId"], "provider": "sandbox"})

    assert ok.status_code == 200
    assert (refused.status_code, refused.json()["error"]) == (409, "promo_already_redeemed")
    assert get_balance(organization_id=organization.pk) == 100
    assert Quote.objects.get(pk=second["quoteId"]).status == "open"  # the refusal changed nothing


def test_the_sandbox_is_refused_with_debug_off(settings, signed_in, organization):
    settings.DEBUG = False
    settings.STRIPE_SECRET_KEY = ""
    body = quote(signed_in, credits=100)

    response = post(signed_in, "/api/credits/purchase", {"quoteId": body["quoteId"], "provider": "sandbox"})

    assert (response.status_code, response.json()["error"]) == (403, "sandbox_disabled")
    assert Quote.objects.get(pk=body["quoteId"]).status == "open"
    assert get_balance(organization_id=organization.pk) == 0


def test_the_sandbox_is_refused_once_a_real_provider_is_configured(sandbox, settings, signed_in):
    settings.STRIPE_SECRET_KEY = "sk_test_creditdesk0123456789abcdefghij"
    body = quote(signed_in, credits=100)
    response = post(signed_in, "/api/credits/purchase", {"quoteId": body["quoteId"], "provider": "sandbox"})
    assert response.json()["error"] == "sandbox_disabled"


def test_an_unconfigured_provider_is_refused(sandbox, signed_in):
    body = quote(signed_in, credits=100)
    response = post(signed_in, "/api/credits/purchase", {"quoteId": body["quoteId"], "provider": "paypal"})
    assert (response.status_code, response.json()["error"]) == (400, "provider_unavailable")


def test_an_expired_quote_is_refused(sandbox, signed_in, organization):
    body = quote(signed_in, credits=100)
    Quote.objects.filter(pk=body["quoteId"]).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = post(signed_in, "/api/credits/purchase", {"quoteId": body["quoteId"], "provider": "sandbox"})

    assert (response.status_code, response.json()["error"]) == (410, "quote_expired")
    assert get_balance(organization_id=organization.pk) == 0


def test_a_used_quote_is_refused(sandbox, signed_in, organization):
    body = quote(signed_in, credits=100)
    post(signed_in, "/api/credits/purchase", {"quoteId": body["quoteId"], "provider": "sandbox"})

    again = post(signed_in, "/api/credits/purchase", {"quoteId": body["quoteId"], "provider": "sandbox"})

    assert (again.status_code, again.json()["error"]) == (409, "quote_used")
    assert get_balance(organization_id=organization.pk) == 100


def test_another_organizations_quote_is_not_found(sandbox, client, owner, outsider, organization):
    client.force_login(outsider)
    theirs = quote(client, credits=100)
    client.force_login(owner)

    response = post(client, "/api/credits/purchase", {"quoteId": theirs["quoteId"], "provider": "sandbox"})

    assert (response.status_code, response.json()["error"]) == (404, "quote_not_found")
    assert get_balance(organization_id=organization.pk) == 0
    assert get_balance(organization_id=outsider.membership.organization_id) == 0


def test_a_tampered_purchase_request_cannot_change_the_price_or_the_credits(sandbox, signed_in, organization):
    body = quote(signed_in, credits=100)

    response = post(
        signed_in,
        "/api/credits/purchase",
        {"quoteId": body["quoteId"], "provider": "sandbox", "credits": 100000, "total": "0.01"},
    )
    made_up = post(signed_in, "/api/credits/purchase", {"quoteId": str(uuid.uuid4()), "provider": "sandbox"})
    not_a_uuid = post(signed_in, "/api/credits/purchase", {"quoteId": "1 OR 1=1", "provider": "sandbox"})

    assert response.json()["credits"] == 100
    assert get_balance(organization_id=organization.pk) == 100
    assert (made_up.status_code, made_up.json()["error"]) == (404, "quote_not_found")
    assert (not_a_uuid.status_code, not_a_uuid.json()["error"]) == (400, "validation_error")


def test_a_member_may_price_but_not_buy(sandbox, client, member, organization):
    client.force_login(member)
    body = quote(client, credits=100)

    response = post(client, "/api/credits/purchase", {"quoteId": body["quoteId"], "provider": "sandbox"})

    assert (response.status_code, response.json()["error"]) == (403, "permission_denied")
    assert get_balance(organization_id=organization.pk) == 0


# --- Wallet reads ---------------------------------------------------------------------------------


def test_rate_packages_and_balance(sandbox, signed_in, organization):
    rate = signed_in.get("/api/credits/rate").json()
    assert rate["rate"] == "0.10"
    assert [tier["minCredits"] for tier in rate["bulkTiers"]] == [1000, 5000, 20000]
    assert rate["providers"] == ["sandbox"]
    assert [p["credits"] for p in signed_in.get("/api/credits/packages").json()["packages"]] == [100, 500, 2000]
    balance = signed_in.get("/api/credits/balance").json()
    assert (balance["orgId"], balance["credits"], balance["status"], balance["plan"]) == (
        organization.pk,
        0,
        "active",
        "free",
    )


def test_summary_sums_the_last_days_by_kind(sandbox, signed_in, organization):
    body = quote(signed_in, credits=1000)
    post(signed_in, "/api/credits/purchase", {"quoteId": body["quoteId"], "provider": "sandbox"})
    spend_credits(organization=organization, amount=300, reason="usage", idempotency_key="t:u1")

    summary = signed_in.get("/api/credits/summary").json()

    assert (summary["balance"], summary["purchased"], summary["spent"], summary["usageEvents"]) == (700, 1000, 300, 1)
    assert summary["amountPaid"] == "95.00"
    assert signed_in.get("/api/credits/summary?days=0").status_code == 400


def test_transactions_page_newest_first_by_keyset(signed_in, organization):
    for n in range(5):
        grant_credits(organization=organization, amount=n + 1, reason=f"g{n}", idempotency_key=f"t:g{n}")

    first = signed_in.get("/api/credits/transactions?limit=2").json()
    second = signed_in.get(f"/api/credits/transactions?limit=2&before={first['nextBefore']}").json()
    last = signed_in.get(f"/api/credits/transactions?limit=2&before={second['nextBefore']}").json()

    assert [t["amount"] for t in first["transactions"]] == [5, 4]
    assert [t["amount"] for t in second["transactions"]] == [3, 2]
    assert ([t["amount"] for t in last["transactions"]], last["nextBefore"]) == ([1], None)
    assert first["transactions"][0]["balanceAfter"] == 15
    assert signed_in.get("/api/credits/transactions?before=abc").status_code == 400
    assert signed_in.get("/api/credits/transactions?limit=0").status_code == 400


# --- Subscription -----------------------------------------------------------------------------------


def test_subscription_and_quotas_show_the_plan(signed_in, organization):
    subscription = signed_in.get("/api/subscription").json()
    quotas = signed_in.get("/api/subscription/quotas").json()

    assert (subscription["plan"]["code"], subscription["status"]) == ("free", "none")
    assert [plan["code"] for plan in subscription["plans"]] == ["free", "starter", "professional", "enterprise"]
    assert quotas == {
        "plan": "free",
        "allowsAllQueryTypes": False,
        "allowedQueryTypes": ["standard"],
        "maxApiKeys": 2,
        "apiKeysUsed": 0,
        "requestsPerMinute": 60,
        "monthlyCredits": 0,
        "subscriberDiscountPercent": "0.00",
    }


def test_a_sandbox_subscription_changes_the_plan_and_grants_the_monthly_credits(
    sandbox, signed_in, organization, redis_client
):
    response = post(signed_in, "/api/subscription/change", {"plan": "professional"})

    assert response.status_code == 200
    assert (response.json()["plan"]["code"], response.json()["status"]) == ("professional", "active")
    assert get_balance(organization_id=organization.pk) == 600
    assert signed_in.get("/api/subscription/quotas").json()["allowsAllQueryTypes"] is True

    cancel = post(signed_in, "/api/subscription/cancel", {})
    assert cancel.status_code == 200
    assert cancel.json()["plan"]["code"] == "free"
    again = post(signed_in, "/api/subscription/cancel", {})
    assert (again.status_code, again.json()["error"]) == (409, "no_subscription")


def test_an_unknown_plan_is_refused(signed_in, organization):
    response = post(signed_in, "/api/subscription/change", {"plan": "platinum"})
    assert (response.status_code, response.json()["error"]) == (400, "unknown_plan")


def test_a_member_cannot_change_the_plan(client, member, organization):
    client.force_login(member)
    response = post(client, "/api/subscription/change", {"plan": "free"})
    assert (response.status_code, response.json()["error"]) == (403, "permission_denied")


@pytest.mark.parametrize(
    ("name", "raw", "detail"),
    [
        ("nested 100,000 deep", b"[" * 100_000 + b"]" * 100_000, "JSON parse error - nested too deeply."),
        ("a number of 5,000 digits", b'{"credits": ' + b"9" * 5000 + b"}", "a number has more than 4300 digits"),
    ],
)
def test_a_body_python_cannot_decode_is_a_plain_400(signed_in, name, raw, detail):
    response = signed_in.generic("POST", "/api/credits/purchase/validate", raw, content_type="application/json")

    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"] == "validation_error"
    assert detail in str(response.json())
    assert not Quote.objects.exists()


def test_subscribing_again_to_the_current_plan_is_refused_and_grants_nothing(sandbox, signed_in, organization):
    first = post(signed_in, "/api/subscription/change", {"plan": "starter", "provider": "sandbox"})
    assert first.status_code == 200

    for _ in range(4):
        again = post(signed_in, "/api/subscription/change", {"plan": "starter", "provider": "sandbox"})
        assert (again.status_code, again.json()["error"]) == (409, "already_on_plan")
        assert again.json()["detail"] == "Your organization is already on the Starter plan."

    assert get_balance(organization_id=organization.pk) == 200
    assert Purchase.objects.filter(organization=organization, kind="subscription").count() == 1


def test_changing_to_free_while_on_free_is_refused(signed_in, organization):
    response = post(signed_in, "/api/subscription/change", {"plan": "free"})

    assert (response.status_code, response.json()["error"]) == (409, "already_on_plan")
    organization.refresh_from_db()
    assert organization.plan_id == "free"
