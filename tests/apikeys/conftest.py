import pytest

from apikeys.authentication import clear_token_cache
from apikeys.permissions import clear_permission_cache
from apikeys.services import create_service_account, issue_api_key


@pytest.fixture(autouse=True)
def _fresh_token_caches():
    clear_token_cache()
    clear_permission_cache()
    yield
    clear_token_cache()
    clear_permission_cache()


@pytest.fixture
def service_token(db):
    _user, token = create_service_account(name="query-api")
    return token


@pytest.fixture
def service_client(client, service_token):
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {service_token}"
    return client


@pytest.fixture
def issued_key(owner, organization):
    """(ApiKey, raw key) of the owner's organization."""
    return issue_api_key(organization=organization, created_by=owner, name="production")
