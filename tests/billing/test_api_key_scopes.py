"""API keys on the billing API: a key moves money or changes the plan only with the `billing` scope."""

import pytest
from drf_spectacular.generators import SchemaGenerator

from apikeys.services import issue_api_key
from billing.models import Purchase, Quote, Subscription
from billing.services import change_subscription
from credits.selectors import get_balance
from tests.billing.conftest import quote_for

pytestmark = pytest.mark.django_db

SCOPE_DETAIL = "This API key needs the `billing` scope: create a key with it to call this endpoint."
CHANGING = [
    "/api/credits/purchase/validate",
    "/api/credits/purchase",
    "/api/subscription/change",
    "/api/subscription/cancel",
]
READING = [
    "/api/credits/rate",
    "/api/credits/packages",
    "/api/credits/balance",
    "/api/credits/summary",
    "/api/credits/transactions",
    "/api/subscription",
    "/api/subscription/quotas",
]


def key_for(user, organization, *scopes: str) -> str:
    _, raw = issue_api_key(
        organization=organization, created_by=user, name=f"key {'+'.join(scopes) or 'default'}", scopes=scopes or None
    )
    return f"Bearer {raw}"


def post(client, path, body, authorization=None):
    extra = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    return client.post(path, body, content_type="application/json", **extra)


@pytest.fixture
def query_key(owner, organization) -> str:
    """The client admin's key with the default scope, as the outside check used."""
    return key_for(owner, organization)


@pytest.fixture
def billing_key(owner, organization) -> str:
    return key_for(owner, organization, "query", "billing")


@pytest.fixture
def subscribed(sandbox, organization, owner) -> Subscription:
    change_subscription(organization=organization, plan_code="starter", provider="sandbox", actor=owner)
    organization.refresh_from_db()
    assert organization.plan_id == "starter"
    return Subscription.objects.get(organization=organization)


def assert_refused_for_the_scope(response) -> None:
    assert response.status_code == 403, response.content
    assert response.json() == {"success": False, "error": "permission_denied", "detail": SCOPE_DETAIL}


# --- A query-scoped key is refused, and nothing changes -------------------------------------------------


def test_a_query_key_cannot_ask_for_a_quote(client, query_key, organization):
    assert_refused_for_the_scope(post(client, "/api/credits/purchase/validate", {"credits": 500}, query_key))

    assert not Quote.objects.filter(organization=organization).exists()


def test_a_query_key_cannot_pay_a_quote(sandbox, client, query_key, organization):
    quote = quote_for(organization, credits=500)

    response = post(client, "/api/credits/purchase", {"quoteId": str(quote.pk), "provider": "sandbox"}, query_key)

    assert_refused_for_the_scope(response)
    quote.refresh_from_db()
    assert (quote.status, Purchase.objects.count(), get_balance(organization_id=organization.pk)) == ("open", 0, 0)


def test_a_query_key_cannot_change_the_plan(sandbox, client, query_key, organization):
    assert_refused_for_the_scope(post(client, "/api/subscription/change", {"plan": "starter"}, query_key))

    organization.refresh_from_db()
    assert organization.plan_id == "free"
    assert not Subscription.objects.filter(organization=organization).exists()
    assert get_balance(organization_id=organization.pk) == 0


def test_a_query_key_cannot_cancel_the_subscription(subscribed, client, query_key, organization):
    assert_refused_for_the_scope(post(client, "/api/subscription/cancel", {}, query_key))

    subscribed.refresh_from_db()
    organization.refresh_from_db()
    assert (subscribed.status, subscribed.cancel_at_period_end, organization.plan_id) == ("active", False, "starter")


@pytest.mark.parametrize("path", CHANGING)
def test_a_key_with_other_scopes_but_not_billing_is_refused_before_the_body_is_read(client, owner, organization, path):
    authorization = key_for(owner, organization, "query", "billing:read", "admin")

    assert_refused_for_the_scope(post(client, path, {"not": "a valid body"}, authorization))


# --- A billing-scoped key works, within the same role rules ------------------------------------------


def test_a_billing_key_prices_and_buys_through_the_sandbox(sandbox, client, billing_key, organization):
    quote = post(client, "/api/credits/purchase/validate", {"credits": 500}, billing_key)
    assert quote.status_code == 200, quote.content

    paid = post(
        client, "/api/credits/purchase", {"quoteId": quote.json()["quoteId"], "provider": "sandbox"}, billing_key
    )

    assert paid.status_code == 200, paid.content
    assert paid.json() == {"success": True, "credits": 500, "remainingCredits": 500}


def test_a_billing_key_changes_and_cancels_the_plan(sandbox, client, billing_key, organization):
    changed = post(client, "/api/subscription/change", {"plan": "starter"}, billing_key)
    assert (changed.status_code, changed.json()["plan"]["code"]) == (200, "starter")

    canceled = post(client, "/api/subscription/cancel", {}, billing_key)
    assert (canceled.status_code, canceled.json()["plan"]["code"]) == (200, "free")


def test_a_members_billing_key_still_cannot_buy_or_change_the_plan(sandbox, client, member, organization):
    authorization = key_for(member, organization, "billing")
    quote = post(client, "/api/credits/purchase/validate", {"credits": 500}, authorization)
    assert quote.status_code == 200  # members may price, as with a session

    paid = post(
        client, "/api/credits/purchase", {"quoteId": quote.json()["quoteId"], "provider": "sandbox"}, authorization
    )
    changed = post(client, "/api/subscription/change", {"plan": "starter"}, authorization)

    for response in (paid, changed):
        assert response.json() == {
            "success": False,
            "error": "permission_denied",
            "detail": "Only a client admin can do this.",
        }
    assert get_balance(organization_id=organization.pk) == 0


# --- Sessions and read-only endpoints are unaffected --------------------------------------------------


def test_a_session_needs_no_scope(sandbox, client, owner, organization):
    client.force_login(owner)

    quote = post(client, "/api/credits/purchase/validate", {"credits": 500})
    paid = post(client, "/api/credits/purchase", {"quoteId": quote.json()["quoteId"], "provider": "sandbox"})
    changed = post(client, "/api/subscription/change", {"plan": "starter"})
    canceled = post(client, "/api/subscription/cancel", {})

    assert [r.status_code for r in (quote, paid, changed, canceled)] == [200, 200, 200, 200]


@pytest.mark.parametrize("path", READING)
def test_a_query_key_still_reads_billing(client, query_key, path):
    response = client.get(path, HTTP_AUTHORIZATION=query_key)

    assert response.status_code == 200, response.content


@pytest.mark.parametrize("path", CHANGING)
def test_no_credentials_are_still_a_401(client, path):
    response = post(client, path, {})

    assert (response.status_code, response.json()["error"]) == (401, "not_authenticated")


# --- The schema says so -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.mark.parametrize("path", CHANGING)
def test_the_schema_documents_the_401_and_the_missing_scope(schema, path):
    operation = schema["paths"][path]["post"]

    def examples(status: str) -> list[dict]:
        content = operation["responses"][status]["content"]["application/json"]
        return [example["value"] for example in content.get("examples", {}).values()]

    assert {"success": False, "error": "permission_denied", "detail": SCOPE_DETAIL} in examples("403")
    assert [value["error"] for value in examples("401")] == ["not_authenticated"]
    assert "`billing` scope" in operation["description"]
