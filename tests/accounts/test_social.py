"""Social log-in with each provider, the provider's HTTP answers mocked with `responses`."""

import re
import time
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
import responses
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount, SocialApp
from django.urls import reverse

from accounts.models import User
from tests.accounts.helpers import log_in

pytestmark = pytest.mark.django_db

LINKEDIN_CONFIG = {
    "issuer": "https://www.linkedin.com/oauth",
    "authorization_endpoint": "https://www.linkedin.com/oauth/v2/authorization",
    "token_endpoint": "https://www.linkedin.com/oauth/v2/accessToken",
    "userinfo_endpoint": "https://api.linkedin.com/v2/userinfo",
    "jwks_uri": "https://www.linkedin.com/oauth/openid/jwks",
    "token_endpoint_auth_methods_supported": ["client_secret_post"],
}


def id_token(*, issuer: str, audience: str, email: str, sub: str) -> str:
    # Received straight from the token endpoint over TLS, so allauth does not check its signature.
    claims = {"iss": issuer, "aud": audience, "sub": sub, "exp": int(time.time()) + 600, "iat": int(time.time())}
    claims.update({"email": email, "email_verified": True, "name": "Ada Lovelace", "picture": "https://x.test/a.png"})
    return jwt.encode(claims, "test-key-not-checked-32-bytes-long!", algorithm="HS256")


def mock_google(rsps: responses.RequestsMock, email: str) -> None:
    token = id_token(issuer="https://accounts.google.com", audience="google-id", email=email, sub="g-1")
    rsps.post("https://oauth2.googleapis.com/token", json={"access_token": "at", "id_token": token})


def mock_github(rsps: responses.RequestsMock, email: str) -> None:
    rsps.post("https://github.com/login/oauth/access_token", json={"access_token": "at", "token_type": "bearer"})
    rsps.get("https://api.github.com/user", json={"id": 4242, "login": "ada", "name": "Ada", "email": email})
    rsps.get("https://api.github.com/user/emails", json=[{"email": email, "primary": True, "verified": True}])


def mock_microsoft(rsps: responses.RequestsMock, email: str) -> None:
    rsps.post(
        "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        json={"access_token": "at", "token_type": "Bearer"},
    )
    rsps.add(
        responses.GET,
        re.compile(r"https://graph\.microsoft\.com/v1\.0/me.*"),
        json={"id": "ms-1", "mail": email, "userPrincipalName": email, "displayName": "Ada", "givenName": "Ada"},
    )


def mock_linkedin(rsps: responses.RequestsMock, email: str) -> None:
    rsps.get("https://www.linkedin.com/oauth/.well-known/openid-configuration", json=LINKEDIN_CONFIG)
    token = id_token(issuer=LINKEDIN_CONFIG["issuer"], audience="linkedin-id", email=email, sub="li-1")
    rsps.post(LINKEDIN_CONFIG["token_endpoint"], json={"access_token": "at", "id_token": token})
    rsps.get(
        LINKEDIN_CONFIG["userinfo_endpoint"],
        json={"sub": "li-1", "email": email, "email_verified": True, "name": "Ada"},
    )


PROVIDERS = {
    # provider id: (login path, mock)
    "google": ("/accounts/google/login/", mock_google),
    "github": ("/accounts/github/login/", mock_github),
    "microsoft": ("/accounts/microsoft/login/", mock_microsoft),
    "linkedin": ("/accounts/oidc/linkedin/login/", mock_linkedin),
}


@pytest.fixture
def social_apps(settings):
    settings.SOCIALACCOUNT_PROVIDERS = {
        "google": {"APPS": [{"client_id": "google-id", "secret": "google-secret"}], "OAUTH_PKCE_ENABLED": True},
        "github": {"APPS": [{"client_id": "github-id", "secret": "github-secret"}]},
        "microsoft": {"APPS": [{"client_id": "ms-id", "secret": "ms-secret", "settings": {"tenant": "common"}}]},
        "openid_connect": {
            "APPS": [
                {
                    "provider_id": "linkedin",
                    "name": "LinkedIn",
                    "client_id": "linkedin-id",
                    "secret": "linkedin-secret",
                    "settings": {
                        "server_url": "https://www.linkedin.com/oauth",
                        "token_auth_method": "client_secret_post",
                    },
                }
            ]
        },
    }


def social_log_in(client, provider: str, email: str, process: str = "login"):
    """Start at our log-in URL, come back to the callback with the state; returns the final response."""
    login_path, mock = PROVIDERS[provider]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock(rsps, email)
        start = client.post(login_path, {"process": process})
        assert start.status_code == 302, start.content.decode()[:500]
        state = parse_qs(urlparse(start["Location"]).query)["state"][0]
        callback = login_path.replace("/login/", "/login/callback/")
        return client.get(callback, {"code": "authorization-code", "state": state})


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_social_log_in_creates_a_user_with_a_personal_organization(client, social_apps, provider):
    response = social_log_in(client, provider, "ada@example.test")

    assert response.status_code == 302 and response["Location"] == "/dashboard/", response.content.decode()[:800]
    user = User.objects.get(email="ada@example.test")
    assert SocialAccount.objects.filter(user=user).count() == 1
    assert user.membership.role == "client_admin"
    assert client.get("/dashboard/").status_code == 200


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_an_existing_verified_email_is_connected_only_after_its_owner_logs_in(client, social_apps, owner, provider):
    EmailAddress.objects.create(user=owner, email=owner.email, primary=True, verified=True)

    social_log_in(client, provider, "owner@acme.test")

    assert not SocialAccount.objects.exists()
    assert User.objects.filter(email__iexact="owner@acme.test").count() == 1
    dashboard = client.get("/dashboard/")
    assert dashboard.status_code == 302  # not logged in as the owner

    log_in(client, "owner@acme.test")
    response = social_log_in(client, provider, "owner@acme.test", process="connect")
    assert response.status_code == 302
    assert SocialAccount.objects.get().user == owner


def test_buttons_show_only_for_configured_providers(client, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {}
    html = client.get("/accounts/login/").content.decode()
    assert "provider-google" not in html and "provider-github" not in html

    SocialApp.objects.create(provider="github", name="GitHub", client_id="db-id", secret="db-secret")
    html = client.get("/accounts/login/").content.decode()
    assert "provider-github" in html and "provider-google" not in html


def test_buttons_show_for_every_provider_configured_in_settings(client, social_apps):
    html = client.get("/accounts/login/").content.decode()
    for marker in ("provider-google", "provider-github", "provider-microsoft", "LinkedIn"):
        assert marker in html


def test_provider_apps_come_from_the_environment_only_when_id_and_secret_are_set(monkeypatch):
    from config.settings import social_apps

    monkeypatch.delenv("GOOGLE_CLIENT_ID", raising=False)
    monkeypatch.delenv("GOOGLE_CLIENT_SECRET", raising=False)
    assert social_apps("GOOGLE") == []
    monkeypatch.setenv("GOOGLE_CLIENT_ID", "cid")
    assert social_apps("GOOGLE") == []
    monkeypatch.setenv("GOOGLE_CLIENT_SECRET", "sec")
    assert social_apps("GOOGLE") == [{"client_id": "cid", "secret": "sec"}]


def test_an_unconfigured_provider_is_not_found(client, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {}
    assert client.post("/accounts/google/login/").status_code == 404
    assert client.get("/accounts/oidc/linkedin/login/").status_code == 404


def test_the_settings_page_names_the_providers_this_site_offers(client, owner, social_apps):
    client.force_login(owner)

    page = client.get(reverse("accounts_settings")).content.decode()

    assert "this site offers Google, GitHub, Microsoft, LinkedIn." in page
    assert reverse("socialaccount_connections") in page


def test_the_settings_page_says_when_no_provider_is_set_up(client, owner, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {}
    client.force_login(owner)

    page = client.get(reverse("accounts_settings")).content.decode()

    assert "This site has no Google, GitHub, Microsoft or LinkedIn log-in set up." in page
