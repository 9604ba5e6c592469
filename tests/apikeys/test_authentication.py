"""Customers' API keys and the service tokens as DRF credentials."""

from datetime import timedelta

import pytest
from django.test import RequestFactory
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authtoken.models import Token
from rest_framework.request import Request

from apikeys.authentication import ApiKeyAuthentication, CachedTokenAuthentication
from apikeys.models import ApiKey
from apikeys.services import issue_api_key, revoke_api_key, revoke_service_token


def drf_request(header: str | None) -> Request:
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    return Request(RequestFactory().get("/api/anything", **extra))


def test_a_bearer_key_authenticates_as_its_creator_with_the_key_as_auth(issued_key, owner):
    api_key, raw = issued_key
    user, auth = ApiKeyAuthentication().authenticate(drf_request(f"Bearer {raw}"))
    assert user == owner
    assert auth == api_key
    assert auth.organization == api_key.organization


def test_other_schemes_are_left_to_other_authenticators(issued_key):
    assert ApiKeyAuthentication().authenticate(drf_request(None)) is None
    assert ApiKeyAuthentication().authenticate(drf_request("Token abc")) is None
    assert ApiKeyAuthentication().authenticate(drf_request("Bearer some.jwt.value")) is None


@pytest.mark.parametrize("header", ["Bearer cdk_live_unknownunknownunknownunknownunknown", "Bearer cdk_live_x y"])
def test_an_unknown_or_malformed_key_fails(db, header):
    with pytest.raises(exceptions.AuthenticationFailed):
        ApiKeyAuthentication().authenticate(drf_request(header))


def test_a_revoked_or_expired_key_fails_with_the_same_message_as_an_unknown_one(owner, organization):
    revoked, revoked_raw = issue_api_key(organization=organization, created_by=owner, name="r")
    revoke_api_key(api_key=revoked)
    expired, expired_raw = issue_api_key(
        organization=organization, created_by=owner, name="e", expires_at=timezone.now() + timedelta(hours=1)
    )
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    messages = set()
    for raw in (revoked_raw, expired_raw, "cdk_live_" + "Z" * 43):
        with pytest.raises(exceptions.AuthenticationFailed) as excinfo:
            ApiKeyAuthentication().authenticate(drf_request(f"Bearer {raw}"))
        messages.add(str(excinfo.value.detail))
    assert len(messages) == 1


def test_last_used_at_is_written_at_most_once_a_minute(issued_key, django_assert_num_queries):
    api_key, raw = issued_key
    auth = ApiKeyAuthentication()
    with django_assert_num_queries(2):  # the lookup and the first last_used_at
        auth.authenticate(drf_request(f"Bearer {raw}"))
    first = ApiKey.objects.get(pk=api_key.pk).last_used_at
    assert first is not None

    with django_assert_num_queries(1):  # the lookup only
        auth.authenticate(drf_request(f"Bearer {raw}"))
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == first

    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now() - timedelta(seconds=61))
    auth.authenticate(drf_request(f"Bearer {raw}"))
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at > first


def test_a_service_token_is_cached_for_a_few_seconds(service_token, django_assert_num_queries, settings):
    auth = CachedTokenAuthentication()
    with django_assert_num_queries(1):
        user, token = auth.authenticate(drf_request(f"Token {service_token}"))
    assert user.is_service and token.key == service_token
    with django_assert_num_queries(0):
        auth.authenticate(drf_request(f"Token {service_token}"))


def test_a_revoked_service_token_stops_working_once_the_cache_expires(service_token, settings, monkeypatch):
    import apikeys.authentication as authentication

    auth = CachedTokenAuthentication()
    auth.authenticate(drf_request(f"Token {service_token}"))
    revoke_service_token(user=Token.objects.get(key=service_token).user)
    auth.authenticate(drf_request(f"Token {service_token}"))  # still trusted within the TTL

    later = authentication.time.monotonic() + settings.SERVICE_TOKEN_CACHE_SECONDS + 0.1
    monkeypatch.setattr(authentication.time, "monotonic", lambda: later)
    with pytest.raises(exceptions.AuthenticationFailed):
        auth.authenticate(drf_request(f"Token {service_token}"))


def test_with_a_zero_ttl_every_request_reads_the_token(service_token, settings, django_assert_num_queries):
    settings.SERVICE_TOKEN_CACHE_SECONDS = 0
    auth = CachedTokenAuthentication()
    auth.authenticate(drf_request(f"Token {service_token}"))
    with django_assert_num_queries(1):
        auth.authenticate(drf_request(f"Token {service_token}"))
