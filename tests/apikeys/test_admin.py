"""Staff manage service accounts and their tokens in the admin; API keys are read-only there."""

from django.urls import reverse
from rest_framework.authtoken.models import Token

from accounts.models import User
from apikeys.models import ApiKey
from apikeys.services import create_service_account


def test_staff_create_a_service_account_and_see_its_token_once(client, superuser):
    client.force_login(superuser)
    response = client.post(reverse("admin:apikeys_serviceaccount_add"), {"name": "query-api"})

    assert response.status_code == 200
    user = User.objects.get(email="query-api@service.creditdesk.invalid")
    assert user.is_service and user.has_perm("apikeys.verify_api_key")
    assert Token.objects.get(user=user).key in response.content.decode()
    assert (
        Token.objects.get(user=user).key
        not in client.get(reverse("admin:apikeys_serviceaccount_changelist")).content.decode()
    )


def test_a_used_service_name_is_a_form_error(client, superuser):
    create_service_account(name="query-api")
    client.force_login(superuser)
    response = client.post(reverse("admin:apikeys_serviceaccount_add"), {"name": "query-api"})
    assert "already exists" in response.content.decode()
    assert User.objects.filter(is_service=True).count() == 1


def test_staff_rotate_and_revoke_service_tokens(client, superuser):
    user, old_token = create_service_account(name="query-api")
    client.force_login(superuser)
    changelist = reverse("admin:apikeys_serviceaccount_changelist")

    response = client.post(changelist, {"action": "rotate_tokens", "_selected_action": [user.pk]})
    new_token = Token.objects.get(user=user).key
    assert new_token != old_token and new_token in response.content.decode()

    client.post(changelist, {"action": "revoke_tokens", "_selected_action": [user.pk]})
    assert not Token.objects.filter(user=user).exists()


def test_the_service_account_list_shows_only_service_accounts(client, superuser, owner):
    create_service_account(name="query-api")
    client.force_login(superuser)
    page = client.get(reverse("admin:apikeys_serviceaccount_changelist")).content.decode()
    assert "query-api@service.creditdesk.invalid" in page and owner.email not in page


def test_staff_revoke_api_keys_from_the_admin(client, superuser, issued_key):
    api_key, _ = issued_key
    client.force_login(superuser)
    client.post(
        reverse("admin:apikeys_apikey_changelist"), {"action": "revoke_selected", "_selected_action": [api_key.pk]}
    )
    api_key.refresh_from_db()
    assert api_key.status == ApiKey.Status.REVOKED and api_key.revoked_by == superuser
