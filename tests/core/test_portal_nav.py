"""The portal's navigation links only to pages the user can open."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

ORGANIZATION_PAGES = ["usage:usage", "apikeys:list", "billing:buy", "billing:plan", "billing:history", "accounts_team"]


def _nav_links(client) -> str:
    page = client.get(reverse("dashboard")).content.decode()
    return page[page.index('<nav class="nav">') : page.index("</nav>")]


def test_a_member_of_an_organization_sees_its_pages(client, owner):
    client.force_login(owner)

    nav = _nav_links(client)

    for name in [*ORGANIZATION_PAGES, "accounts_settings"]:
        assert f'href="{reverse(name)}"' in nav
        assert client.get(reverse(name)).status_code == 200


def test_a_user_without_an_organization_sees_only_settings(client, staff):
    client.force_login(staff)

    nav = _nav_links(client)

    assert f'href="{reverse("accounts_settings")}"' in nav
    for name in ORGANIZATION_PAGES:
        assert f'href="{reverse(name)}"' not in nav
        assert client.get(reverse(name)).status_code == 404
