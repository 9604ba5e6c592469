"""POST /api/keys/verify, exactly as the public contract says."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.services import issue_api_key, revoke_api_key
from credits.services import grant_credits

URL = "/api/keys/verify"


def verify(client, body):
    return client.post(URL, data=json.dumps(body), content_type="application/json")


def test_a_valid_key_returns_its_owner_scopes_and_the_wallet(service_client, owner, organization):
    grant_credits(organization=organization, amount=95, reason="x")
    api_key, raw = issue_api_key(organization=organization, created_by=owner, name="k", scopes="query,read:usage")

    response = verify(service_client, {"key": raw})

    assert response.status_code == 200
    assert response.json() == {
        "valid": True,
        "apiKeyId": api_key.pk,
        "userId": owner.pk,
        "orgId": organization.pk,
        "scopes": ["query", "read:usage"],
        "remainingCredits": 95,
        "status": "active",
    }


def test_verify_takes_at_most_three_queries(service_client, issued_key, django_assert_max_num_queries):
    _, raw = issued_key
    with django_assert_max_num_queries(3):
        response = verify(service_client, {"key": raw})
    assert response.json()["valid"] is True
    with django_assert_max_num_queries(1):  # the token and its permission are cached for a few seconds
        assert verify(service_client, {"key": raw}).json()["valid"] is True


@pytest.mark.parametrize(
    "key",
    [
        "cdk_live_" + "A" * 43,
        "not-a-key",
        "cdk_test_" + "A" * 43,
        " ",
        "cdk_live_",
        "x" * 10_000,
        "\x00",
        "cdk_live_\x00a",
    ],
)
def test_any_string_that_is_not_a_key_is_not_found(service_client, issued_key, key):
    response = verify(service_client, {"key": key})
    assert response.status_code == 200
    assert response.json() == {"valid": False, "reason": "not_found"}


def test_a_revoked_key_says_only_revoked(service_client, issued_key):
    api_key, raw = issued_key
    revoke_api_key(api_key=api_key)
    assert verify(service_client, {"key": raw}).json() == {"valid": False, "reason": "revoked"}


def test_an_expired_key_says_only_expired_even_before_the_sweep(service_client, owner, organization):
    api_key, raw = issue_api_key(
        organization=organization, created_by=owner, name="k", expires_at=timezone.now() + timedelta(hours=1)
    )
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert verify(service_client, {"key": raw}).json() == {"valid": False, "reason": "expired"}

    ApiKey.objects.filter(pk=api_key.pk).update(status=ApiKey.Status.EXPIRED)
    assert verify(service_client, {"key": raw}).json() == {"valid": False, "reason": "expired"}


def test_a_paused_wallet_says_credits_paused(service_client, issued_key, organization):
    from credits.services import pause_credits

    _, raw = issued_key
    pause_credits(organization=organization)
    assert verify(service_client, {"key": raw}).json() == {"valid": False, "reason": "credits_paused"}


def test_revoked_wins_over_expired_and_paused(service_client, owner, organization):
    from credits.services import pause_credits

    api_key, raw = issue_api_key(
        organization=organization, created_by=owner, name="k", expires_at=timezone.now() + timedelta(hours=1)
    )
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    pause_credits(organization=organization)
    assert verify(service_client, {"key": raw}).json()["reason"] == "expired"
    revoke_api_key(api_key=api_key)
    assert verify(service_client, {"key": raw}).json()["reason"] == "revoked"


@pytest.mark.parametrize("body", [{}, {"key": ""}, {"key": None}, {"key": 5}, {"key": ["cdk_live_x"]}, {"key": True}])
def test_a_missing_empty_or_non_string_key_is_a_400(service_client, body):
    response = verify(service_client, body)
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"
    assert "key" in response.json()["fields"]


def test_a_body_that_is_not_an_object_is_a_400(service_client):
    response = service_client.post(URL, data="[]", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_json_is_a_415_with_body_level_fields(service_client, issued_key, content_type):
    _, raw_key = issued_key
    body = json.dumps({"key": raw_key}).encode()
    if content_type is None:
        response = service_client.generic("POST", URL, data=body)
    else:
        response = service_client.generic("POST", URL, data=body, content_type=content_type)

    assert response.status_code == 415
    payload = response.json()
    assert payload["error"] == "unsupported_media_type"
    assert payload["fields"] == {"non_field_errors": [payload["detail"]]}


def test_no_body_and_no_content_type_is_a_415_as_on_the_other_service_endpoints(service_client):
    response = service_client.generic("POST", URL)

    assert response.status_code == 415
    assert response.json()["fields"] == {"non_field_errors": [response.json()["detail"]]}


def test_without_credentials_it_is_a_401(client, issued_key):
    response = verify(client, {"key": issued_key[1]})
    assert response.status_code == 401
    assert response.json() == {
        "success": False,
        "error": "not_authenticated",
        "detail": "Authentication credentials were not provided.",
    }
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize("header", ["Token nope", "Token", "Bearer cdk_live_unknown", "Token a b"])
def test_bad_credentials_are_a_401(client, issued_key, header):
    response = client.post(
        URL, data=json.dumps({"key": issued_key[1]}), content_type="application/json", HTTP_AUTHORIZATION=header
    )
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


def test_a_customers_api_key_is_a_403(client, issued_key):
    _, raw = issued_key
    response = client.post(
        URL, data=json.dumps({"key": raw}), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"


def test_a_customers_session_is_a_403(client, owner, issued_key):
    client.force_login(owner)
    response = verify(client, {"key": issued_key[1]})
    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"


def test_a_token_of_a_user_who_is_not_a_service_account_is_a_403(client, owner, issued_key):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=owner)
    response = client.post(
        URL,
        data=json.dumps({"key": issued_key[1]}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {token.key}",
    )
    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"


def test_a_service_account_without_the_verify_permission_is_a_403(service_client, issued_key):
    from accounts.models import User

    User.objects.get(is_service=True).user_permissions.clear()
    response = verify(service_client, {"key": issued_key[1]})
    assert response.status_code == 403


def test_other_methods_are_405_in_the_envelope(service_client):
    response = service_client.get(URL)
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_the_schema_documents_every_outcome_with_examples(staff, client):
    client.force_login(staff)
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    operation = response.json()["paths"]["/api/keys/verify"]["post"]
    examples = operation["responses"]["200"]["content"]["application/json"]["examples"]
    reasons = {example["value"].get("reason") for example in examples.values()}
    assert reasons == {None, "not_found", "revoked", "expired", "credits_paused"}
    assert set(operation["responses"]) >= {"200", "400", "401", "403"}
    assert "examples" in operation["requestBody"]["content"]["application/json"]
