"""The portal page of API keys: list, create (shown once), revoke; who may manage which key."""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from apikeys.models import ApiKey, hash_key
from apikeys.services import issue_api_key


def test_the_list_shows_the_organizations_keys_and_never_another_orgs(client, owner, member, outsider, organization):
    issue_api_key(organization=organization, created_by=owner, name="owner key")
    issue_api_key(organization=organization, created_by=member, name="member key")
    issue_api_key(organization=outsider.membership.organization, created_by=outsider, name="globex key")
    client.force_login(member)

    response = client.get(reverse("apikeys:list"))

    assert response.status_code == 200
    page = response.content.decode()
    assert "owner key" in page and "member key" in page and "globex key" not in page


def test_the_page_is_in_the_portal_navigation(client, owner):
    client.force_login(owner)
    page = client.get(reverse("apikeys:list")).content.decode()
    assert f'href="{reverse("apikeys:list")}"' in page


def test_creating_a_key_shows_it_once_with_a_copy_button_and_a_warning(client, member, organization):
    client.force_login(member)
    expires = (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")

    response = client.post(
        reverse("apikeys:create"), {"name": "laptop", "scopes": "query, read:usage", "expires_at": expires}
    )

    assert response.status_code == 200
    api_key = ApiKey.objects.get()
    raw = response.context["raw_key"]
    assert api_key.key_hash == hash_key(raw)
    assert api_key.created_by == member and api_key.organization == organization
    assert api_key.scopes == ["query", "read:usage"]
    assert api_key.expires_at is not None
    page = response.content.decode()
    assert raw in page and "shown only once" in page and 'id="copy-api-key"' in page
    assert "no-store" in response["Cache-Control"]
    assert raw not in client.get(reverse("apikeys:list")).content.decode()


def test_a_bad_form_or_a_refused_key_changes_nothing(client, owner, organization):
    client.force_login(owner)
    past = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert client.post(reverse("apikeys:create"), {"name": "x", "expires_at": past}).status_code == 200
    response = client.post(reverse("apikeys:create"), {"name": "x", "scopes": "Not Valid"})
    assert "Invalid scope" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_a_name_with_control_characters_is_a_form_error(client, owner, organization):
    client.force_login(owner)
    response = client.post(reverse("apikeys:create"), {"name": "tab\tname\x01"})
    assert response.status_code == 200
    assert "cannot contain control characters" in response.context["form"].errors["name"][0]
    assert not ApiKey.objects.exists()


def test_the_plans_key_limit_is_shown_as_a_form_error(client, owner, organization):
    organization.plan.max_api_keys = 1
    organization.plan.save()
    issue_api_key(organization=organization, created_by=owner, name="only")
    client.force_login(owner)
    response = client.post(reverse("apikeys:create"), {"name": "second"})
    assert "allows 1 active API key" in response.content.decode()
    assert ApiKey.objects.count() == 1


def test_revoking_asks_for_confirmation_then_revokes_on_post(client, owner, organization):
    api_key, _ = issue_api_key(organization=organization, created_by=owner, name="old")
    client.force_login(owner)
    url = reverse("apikeys:revoke", args=[api_key.pk])

    assert "Revoke “old”?" in client.get(url).content.decode()
    api_key.refresh_from_db()
    assert api_key.status == ApiKey.Status.ACTIVE

    response = client.post(url)
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.status == ApiKey.Status.REVOKED
    assert api_key.revoked_by == owner

    page = client.get(url).content.decode()  # found from outside: it offered to revoke it again
    assert "“old” is revoked" in page and "Revoke the key" not in page


def test_a_member_revokes_their_own_keys_but_not_their_colleagues(client, owner, member, organization):
    own, _ = issue_api_key(organization=organization, created_by=member, name="mine")
    colleagues, _ = issue_api_key(organization=organization, created_by=owner, name="theirs")
    client.force_login(member)

    assert client.post(reverse("apikeys:revoke", args=[colleagues.pk])).status_code == 403
    assert client.post(reverse("apikeys:revoke", args=[own.pk])).status_code == 302
    colleagues.refresh_from_db()
    assert colleagues.status == ApiKey.Status.ACTIVE


def test_a_client_admin_revokes_any_key_of_the_organization(client, owner, member, organization):
    api_key, _ = issue_api_key(organization=organization, created_by=member, name="member's")
    client.force_login(owner)
    assert client.post(reverse("apikeys:revoke", args=[api_key.pk])).status_code == 302
    api_key.refresh_from_db()
    assert api_key.status == ApiKey.Status.REVOKED


def test_another_organizations_key_is_a_404(client, owner, outsider, staff):
    foreign, _ = issue_api_key(organization=outsider.membership.organization, created_by=outsider, name="globex")
    for user in (owner, staff):
        client.force_login(user)
        assert client.get(reverse("apikeys:revoke", args=[foreign.pk])).status_code == 404
        assert client.post(reverse("apikeys:revoke", args=[foreign.pk])).status_code == 404
    foreign.refresh_from_db()
    assert foreign.status == ApiKey.Status.ACTIVE


def test_pages_need_a_log_in(client):
    response = client.get(reverse("apikeys:list"))
    assert response.status_code == 302 and "login" in response["Location"]
