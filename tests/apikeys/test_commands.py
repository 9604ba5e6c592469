"""create_service_token, create_api_key and revoke_api_key as operators script them (contract section 4)."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.authtoken.models import Token

from accounts.models import User
from apikeys.models import ApiKey, hash_key


def run(*args) -> dict:
    out = StringIO()
    call_command(*args, stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_create_service_token_makes_a_service_account_that_can_verify_keys(db):
    result = run("create_service_token", "query-api")

    token = Token.objects.select_related("user").get(key=result["token"])
    assert token.user.is_service and token.user.email == "query-api@service.creditdesk.invalid"
    assert token.user.has_perm("apikeys.verify_api_key")
    assert not token.user.has_usable_password()


def test_create_service_token_refuses_a_name_already_used(db):
    run("create_service_token", "query-api")
    with pytest.raises(CommandError, match="already exists"):
        run("create_service_token", "Query-API")
    with pytest.raises(CommandError):
        run("create_service_token", "bad name!")
    assert User.objects.filter(is_service=True).count() == 1


def test_create_api_key_prints_the_key_once(owner, organization):
    result = run("create_api_key", "OWNER@acme.test", "--name", "cli", "--scopes", "query,admin:read")

    api_key = ApiKey.objects.get(pk=result["apiKeyId"])
    assert result["key"].startswith("cdk_live_") and api_key.key_hash == hash_key(result["key"])
    assert api_key.name == "cli" and api_key.scopes == ["query", "admin:read"]
    assert api_key.created_by == owner and api_key.organization == organization


def test_create_api_key_with_an_expiry(owner):
    expires = (timezone.now() + timedelta(days=1)).replace(microsecond=0)
    result = run("create_api_key", owner.email, "--expires-at", expires.isoformat())
    assert ApiKey.objects.get(pk=result["apiKeyId"]).expires_at == expires
    naive = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    assert run("create_api_key", owner.email, "--expires-at", naive)["apiKeyId"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody@acme.test"], "No customer"),
        (["owner@acme.test", "--expires-at", "2001-01-01T00:00:00Z"], "in the past"),
        (["owner@acme.test", "--expires-at", "tomorrow"], "not an ISO-8601"),
        (["owner@acme.test", "--scopes", "UPPER"], "Invalid scope"),
        (["owner@acme.test", "--name", "tab\tname\x01"], "cannot contain control characters"),
    ],
)
def test_create_api_key_fails_clearly_and_creates_nothing(owner, args, message):
    with pytest.raises(CommandError, match=message):
        run("create_api_key", *args)
    assert not ApiKey.objects.exists()


def test_revoke_api_key_prints_the_revoked_status_and_is_idempotent(owner, issued_key):
    api_key, _ = issued_key
    assert run("revoke_api_key", str(api_key.pk)) == {"apiKeyId": api_key.pk, "status": "revoked"}
    assert run("revoke_api_key", str(api_key.pk)) == {"apiKeyId": api_key.pk, "status": "revoked"}
    api_key.refresh_from_db()
    assert api_key.status == ApiKey.Status.REVOKED


@pytest.mark.parametrize("key_id", ["999999", "abc", "0", "-1"])
def test_revoke_api_key_of_an_unknown_or_invalid_id_fails(db, key_id):
    with pytest.raises(CommandError):
        run("revoke_api_key", key_id)
