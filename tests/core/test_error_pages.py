"""Portal error pages in production (DEBUG off): the site's own pages, saying what happened."""

import pytest
from django.test import Client
from django.urls import reverse

from apikeys.services import issue_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def production(settings):
    settings.DEBUG = False


def test_an_unknown_page_is_the_sites_404(production, client, owner):
    client.force_login(owner)

    response = client.get("/no-such-page/")

    assert response.status_code == 404
    page = response.content.decode()
    assert "<h1>Page not found</h1>" in page
    assert f'href="{reverse("dashboard")}"' in page


def test_a_refused_action_is_the_sites_403_with_the_reason(production, client, owner, member, organization):
    colleagues, _ = issue_api_key(organization=organization, created_by=owner, name="theirs")
    client.force_login(member)

    response = client.post(reverse("apikeys:revoke", args=[colleagues.pk]))

    assert response.status_code == 403
    page = response.content.decode()
    assert "<h1>Not allowed</h1>" in page
    assert "Members manage the keys they created; client admins manage all." in page


def test_a_server_error_is_the_sites_500(production, settings, owner):
    settings.ROOT_URLCONF = "tests.core.failing_urls"
    client = Client(raise_request_exception=False)

    response = client.get("/fail/")

    assert response.status_code == 500
    assert "Something went wrong on our side" in response.content.decode()


def test_a_form_sent_without_its_csrf_token_is_the_sites_page_and_changes_nothing(owner, organization):
    from credits.selectors import get_wallet

    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)

    response = client.post(reverse("accounts_organization_settings"), {"low_credit_threshold": "500"})

    assert response.status_code == 403
    assert "<h1>The form has expired</h1>" in response.content.decode()
    assert get_wallet(organization=organization).low_credit_threshold is None


def test_opening_a_form_s_action_url_is_the_sites_405_page(production, client, owner):
    """Found from outside: Django's require_POST answered with an empty page."""
    client.force_login(owner)

    response = client.get(reverse("billing:plan_cancel"))

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    page = response.content.decode()
    assert "<h1>Not a page</h1>" in page
    assert f'href="{reverse("dashboard")}"' in page
