"""Usage fixtures: a service client, a funded customer with an API key, and a report helper."""

from contextlib import contextmanager

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from apikeys.authentication import clear_token_cache
from apikeys.permissions import clear_permission_cache
from apikeys.services import create_service_account, issue_api_key
from credits.models import Entry, Transaction
from credits.services import grant_credits
from usage.models import UsageEvent


@contextmanager
def rolled_back():
    """Run the block in a transaction that is then rolled back (one database state per example)."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def ledger_rows() -> tuple[int, int, int]:
    """How many transactions, entries and usage events there are."""
    return Transaction.objects.count(), Entry.objects.count(), UsageEvent.objects.count()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # The personas have passwords; Argon2 would dominate these tests' run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_auth_caches():
    clear_token_cache()
    clear_permission_cache()
    yield
    clear_token_cache()
    clear_permission_cache()


@pytest.fixture
def service_token(db):
    _, token = create_service_account(name="query-api")
    return token


@pytest.fixture
def service_client(service_token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {service_token}")
    return client


@pytest.fixture
def api_key(owner, organization):
    key, _ = issue_api_key(organization=organization, created_by=owner, name="Production")
    return key


@pytest.fixture
def funded(organization):
    """The organization's wallet with 100 credits."""
    grant_credits(organization=organization, amount=100, reason="test funds")
    return organization


@pytest.fixture
def report_body(owner, api_key, funded):
    def build(**overrides):
        body = {"userId": owner.pk, "apiKeyId": api_key.pk, "creditsUsed": 5, "queryType": "standard"}
        body.update(overrides)
        return {key: value for key, value in body.items() if value is not ...}

    return build


@pytest.fixture
def post_report(service_client):
    def post(body, **headers):
        return service_client.post("/api/usage/report", body, format="json", **headers)

    return post
