"""IDOR: every customer URL and API endpoint, requested by a user of organization B, never
reveals or changes organization A's objects.

The URLs are discovered from the resolver, so a new URL is tested the day it is added:
- A URL without parameters is requested as B (session, and API key under /api/); the
  answer must show none of A's marks (A's name, emails, key prefix...).
- A URL with parameters must be listed in OBJECT_URLS (how to build its kwargs from A's
  objects) or in EXEMPT (why its parameter is not an organization's object). It is
  requested with GET and POST as B and must answer 404 (403 where listed in NOT_SECRET;
  405 for a method the view does not take), never A's data. An unlisted parametrized URL
  fails the test: add it to one of the tables.
"""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts.invitations import make_token
from accounts.models import Invitation, Membership
from accounts.services import create_customer, invite_member

pytestmark = pytest.mark.django_db

# Not customer pages: staff-only admin, static files, API documentation, health probes.
SKIPPED_PREFIXES = ("admin/", "static/", "api/schema/", "api/docs/", "health", "ready")

# url name -> kwargs built from A's objects (see `org_a`).
OBJECT_URLS = {
    "accounts_member_role": lambda a: {"membership_id": a.owner_membership.pk},
    "accounts_member_remove": lambda a: {"membership_id": a.member_membership.pk},
    "accounts_invitation_revoke": lambda a: {"invitation_id": a.invitation.pk},
    "accounts_invitation": lambda a: {"token": make_token(a.invitation)},
    "apikeys:revoke": lambda a: {"api_key_id": a.api_key.pk},
    "billing:receipt": lambda a: {"purchase_id": a.purchase.pk},
    "billing:dispute": lambda a: {"purchase_id": a.purchase.pk},
    "api-user-credits": lambda a: {"userId": a.owner.pk},
    "mfa_remove_webauthn": lambda a: {"pk": a.webauthn.pk},
    "mfa_edit_webauthn": lambda a: {"pk": a.webauthn.pk},
}

# url name -> why its parameter is not an organization's object.
EXEMPT = {
    "account_confirm_email": "a one-time emailed key; whoever holds it confirms that address",
    "account_reset_password_from_key": "a one-time emailed key bound to its user",
    "openid_connect_login": "provider id (linkedin), not an object",
    "openid_connect_callback": "provider id (linkedin), not an object",
    "djstripe:djstripe_webhook_by_uuid": "Stripe's signed webhook endpoint, not a customer page",
}

# url names whose object is not secret: 403 is as good as 404 there.
NOT_SECRET: set[str] = set()

ALLOWED_FOR_PLAIN_PAGES = {200, 201, 204, 301, 302, 400, 401, 403, 404, 405, 409, 415}


def walk(patterns, prefix="", namespace="", params=False):
    """(route, url name, has parameters) of every URL of the project."""
    for entry in patterns:
        route = prefix + str(entry.pattern)
        has_params = params or bool(entry.pattern.regex.groupindex) or bool(entry.pattern.regex.groups)
        if isinstance(entry, URLResolver):
            ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from walk(entry.url_patterns, route, ns, has_params)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}{entry.name}" if entry.name else None
            yield route, name, has_params


def customer_urls():
    for route, name, has_params in walk(get_resolver().url_patterns):
        if not route.startswith(SKIPPED_PREFIXES):
            yield route, name, has_params


def plain_path(route: str) -> str:
    return "/" + route.replace("^", "").replace("$", "").replace("\\", "")


@pytest.fixture
def org_a(settings, django_capture_on_commit_callbacks):
    """Organization A with one object of every kind a customer URL can name."""
    from allauth.mfa.models import Authenticator

    from apikeys.services import issue_api_key
    from billing.services import create_quote, start_purchase
    from credits.services import grant_credits
    from usage.services import UsageReport, record_usage

    owner = create_customer(email="alice@alpha-idor.test", password="alpha-pass-123!", org_slug="alpha-idor-org")
    organization = owner.membership.organization
    organization.name = "Alpha Idor Corp"
    organization.save(update_fields=["name"])
    member = create_customer(email="adam@alpha-idor.test", password="alpha-pass-123!", org_slug="alpha-idor-org")
    invitation = invite_member(
        organization=organization, email="invitee@alpha-idor.test", role="member", invited_by=owner
    )
    api_key, _raw = issue_api_key(organization=organization, created_by=owner, name="alpha-idor-key")
    grant_credits(organization=organization, amount=1000, reason="alpha idor credits")
    record_usage(report=UsageReport(user_id=owner.pk, api_key_id=api_key.pk, credits=7, query_type="standard"))
    settings.DEBUG = True  # the sandbox payment provider exists only in the demo
    quote = create_quote(organization=organization, credits=100, actor=owner)
    purchase = start_purchase(organization=organization, quote_id=quote.pk, provider="sandbox", actor=owner).purchase
    settings.DEBUG = False
    webauthn = Authenticator.objects.create(
        user=owner, type=Authenticator.Type.WEBAUTHN, data={"name": "alpha-idor-passkey", "credential": {}}
    )
    return SimpleNamespace(
        organization=organization,
        owner=owner,
        member=member,
        owner_membership=owner.membership,
        member_membership=member.membership,
        invitation=invitation,
        api_key=api_key,
        purchase=purchase,
        webauthn=webauthn,
        marks=[
            "Alpha Idor Corp",
            "alpha-idor-org",
            "alice@alpha-idor.test",
            "adam@alpha-idor.test",
            "invitee@alpha-idor.test",
            "alpha-idor-key",
            api_key.prefix,
            "alpha-idor-passkey",
        ],
    )


@pytest.fixture
def client_b(db):
    """A client admin of organization B, logged in with their password and freshly
    reauthenticated (so allauth's sensitive pages reach their lookups)."""
    user = create_customer(email="bob@beta-idor.test", password="beta-pass-123!", org_slug="beta-idor-org")
    client = Client()
    assert client.post("/accounts/login/", {"login": user.email, "password": "beta-pass-123!"}).status_code == 302
    assert client.post("/accounts/reauthenticate/", {"password": "beta-pass-123!"}).status_code == 302
    client.user = user
    return client


@pytest.fixture
def api_key_b(client_b):
    from apikeys.services import issue_api_key

    _key, raw = issue_api_key(
        organization=client_b.user.membership.organization, created_by=client_b.user, name="beta key"
    )
    return raw


def leaked(response, marks) -> list[str]:
    body = response.content.decode(errors="replace")
    return [mark for mark in marks if mark in body]


def test_every_parametrized_customer_url_is_listed():
    unknown = sorted(
        f"{name or '(unnamed)'}: /{route}"
        for route, name, has_params in customer_urls()
        if has_params and name not in OBJECT_URLS and name not in EXEMPT
    )
    assert not unknown, "Add these URLs to OBJECT_URLS (or EXEMPT, with a reason) in tests/test_idor.py:\n" + "\n".join(
        unknown
    )


def test_another_organizations_objects_are_not_found(org_a, client_b, api_key_b):
    failures = []
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {api_key_b}"}
    for _route, name, has_params in customer_urls():
        if not has_params or name not in OBJECT_URLS:
            continue
        path = reverse(name, kwargs=OBJECT_URLS[name](org_a))
        allowed = {404, 403} if name in NOT_SECRET else {404}
        attempts = [("GET", {}), ("POST", {})]
        if path.startswith("/api/"):
            attempts += [("GET", bearer), ("POST", bearer)]
        answered = set()
        for method, headers in attempts:
            if method == "GET":
                response = client_b.get(path, **headers)
            else:
                response = client_b.post(path, data={}, content_type="application/json", **headers)
            answered.add(response.status_code)
            if response.status_code not in allowed | {405}:
                failures.append(f"{method} {path} ({name}) answered {response.status_code}, expected {allowed}")
            if leaks := leaked(response, org_a.marks):
                failures.append(f"{method} {path} ({name}) shows {leaks}")
        if answered <= {405}:
            failures.append(f"{path} ({name}) answered only 405: no method reached the lookup")
    assert not failures, "\n".join(failures)

    # And nothing of A changed.
    org_a.api_key.refresh_from_db()
    assert org_a.api_key.status == "active"
    assert Membership.objects.get(pk=org_a.member_membership.pk).organization == org_a.organization
    assert Membership.objects.get(pk=org_a.owner_membership.pk).role == "client_admin"
    assert Invitation.objects.get(pk=org_a.invitation.pk).is_pending
    assert not org_a.purchase.disputes.exists()
    from allauth.mfa.models import Authenticator

    assert Authenticator.objects.filter(pk=org_a.webauthn.pk).exists()


def test_pages_without_parameters_show_only_the_requesters_organization(org_a, client_b, api_key_b):
    failures = []
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {api_key_b}"}
    for route, name, has_params in customer_urls():
        if has_params:
            continue
        path = plain_path(route)
        attempts = [{}] + ([bearer] if path.startswith("/api/") else [])
        for headers in attempts:
            response = client_b.get(path, **headers)
            if response.status_code not in ALLOWED_FOR_PLAIN_PAGES:
                failures.append(f"GET {path} ({name}) answered {response.status_code}")
            if leaks := leaked(response, org_a.marks):
                failures.append(f"GET {path} ({name}) shows {leaks}")
    assert not failures, "\n".join(failures)


def test_the_walk_covers_the_known_pages(client_b):
    routes = {plain_path(route) for route, _name, has_params in customer_urls() if not has_params}
    assert {"/team/", "/settings/", "/dashboard/"} <= routes
    names = {name for _route, name, _has_params in customer_urls()}
    assert {"accounts_member_role", "accounts_invitation"} <= names


def test_an_expired_invitation_link_is_no_more_found_than_a_foreign_one(org_a, client_b):
    Invitation.objects.filter(pk=org_a.invitation.pk).update(
        created_at=org_a.invitation.created_at - timedelta(days=30)
    )
    response = client_b.get(reverse("accounts_invitation", args=[make_token(org_a.invitation)]))
    assert response.status_code in (404, 410)
    assert not leaked(response, ["invitee@alpha-idor.test"])
