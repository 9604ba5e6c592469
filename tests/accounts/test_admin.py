"""Staff changing organizations and users in the admin go through the services' rules.

Found from outside: a plan changed in the organization's admin page did not reach Redis
(no outbox row, no version bump), and a deactivated user's keys stayed active for the public
query API.
"""

import pytest
from allauth.mfa.models import Authenticator
from django.contrib import admin
from django.urls import reverse

from accounts.models import Invitation, Organization, User
from accounts.services import invite_member
from apikeys.models import ApiKey
from apikeys.services import issue_api_key
from billing.models import Plan
from core.models import AuditEvent
from credits.models import Account
from tests.factories import enrol_totp

pytestmark = pytest.mark.django_db


def organization_form(organization, **changes):
    data = {
        "name": organization.name,
        "slug": organization.slug,
        "plan": organization.plan_id,
        "is_active": "on" if organization.is_active else "",
        "require_mfa": "",
        "plan_when_opened": organization.plan_id,
        "memberships-TOTAL_FORMS": str(organization.memberships.count()),
        "memberships-INITIAL_FORMS": str(organization.memberships.count()),
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    for n, membership in enumerate(organization.memberships.order_by("pk")):
        data[f"memberships-{n}-id"] = str(membership.pk)
        data[f"memberships-{n}-organization"] = str(organization.pk)
    return {key: value for key, value in {**data, **changes}.items() if value != ""}


def test_a_plan_changed_in_the_admin_bumps_the_version_and_reaches_redis(
    client, superuser, organization, member, redis_client, django_capture_on_commit_callbacks
):
    client.force_login(superuser)
    version = Account.objects.get(organization=organization).version
    url = reverse("admin:accounts_organization_change", args=[organization.pk])

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, organization_form(organization, plan="enterprise"))

    assert response.status_code == 302, response.content.decode()[:2000]
    organization.refresh_from_db()
    assert organization.plan_id == "enterprise"
    assert Account.objects.get(organization=organization).version == version + 1
    published = redis_client.hgetall(f"creditdesk:org:{organization.pk}")
    assert published["plan"] == "enterprise" and published["version"] == str(version + 1)
    assert organization.memberships.count() == 2  # the read-only inline changed nothing


def test_an_inactive_plan_is_refused_in_the_admin(client, superuser, organization):
    Plan.objects.filter(code="starter").update(is_active=False)
    client.force_login(superuser)
    url = reverse("admin:accounts_organization_change", args=[organization.pk])

    response = client.post(url, organization_form(organization, plan="starter"))

    assert response.status_code == 200
    assert "is not active" in response.content.decode()
    organization.refresh_from_db()
    assert organization.plan_id == "free"


def test_members_are_read_only_on_the_organizations_admin_page(client, superuser, organization, member):
    client.force_login(superuser)

    page = client.get(reverse("admin:accounts_organization_change", args=[organization.pk])).content.decode()

    assert "member@acme.test" in page
    assert "memberships-0-DELETE" not in page and "memberships-0-role" not in page
    assert 'name="plan_when_opened" value="free"' in page


def test_deactivating_a_user_in_the_admin_revokes_the_keys_they_created(
    client, superuser, member, owner, organization, redis_client, django_capture_on_commit_callbacks
):
    members_key, _ = issue_api_key(organization=organization, created_by=member, name="member's")
    owners_key, _ = issue_api_key(organization=organization, created_by=owner, name="owner's")
    client.force_login(superuser)
    url = reverse("admin:accounts_user_change", args=[member.pk])
    form = {
        "email": member.email,
        "full_name": member.full_name,
        "last_login_0": "",
        "date_joined_0": member.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": member.date_joined.strftime("%H:%M:%S"),
        "_save": "Save",
    }

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, form)

    assert response.status_code == 302, response.content.decode()[:2000]
    member.refresh_from_db()
    assert member.is_active is False
    assert ApiKey.objects.get(pk=members_key.pk).status == ApiKey.Status.REVOKED
    assert ApiKey.objects.get(pk=owners_key.pk).status == ApiKey.Status.ACTIVE
    assert redis_client.hget(f"creditdesk:key:{members_key.key_hash}", "status") == "revoked"


def test_saving_an_organization_keeps_a_plan_changed_since_the_page_was_opened(client, superuser, organization):
    """Found in review: the save wrote back every field, the plan the page was opened with too."""
    client.force_login(superuser)
    url = reverse("admin:accounts_organization_change", args=[organization.pk])
    form = organization_form(organization, name="Acme Renamed")
    Organization.objects.filter(pk=organization.pk).update(plan="professional")  # Stripe, meanwhile

    response = client.post(url, form)

    assert response.status_code == 302, response.content.decode()[:2000]
    organization.refresh_from_db()
    assert (organization.name, organization.plan_id) == ("Acme Renamed", "professional")


def user_form(user, **changes):
    data = {
        "email": user.email,
        "full_name": user.full_name,
        "is_active": "on" if user.is_active else "",
        "last_login_0": "",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "_save": "Save",
    }
    return {key: value for key, value in {**data, **changes}.items() if value != ""}


RIGHTS = {"is_staff": "on", "is_superuser": "on", "is_service": "on"}


def test_a_business_admin_cannot_make_themselves_superuser(client, business_admin):
    client.force_login(business_admin)
    url = reverse("admin:accounts_user_change", args=[business_admin.pk])
    group = business_admin.groups.get()

    response = client.post(url, user_form(business_admin, **RIGHTS, groups=[group.pk]))

    assert response.status_code == 403
    business_admin.refresh_from_db()
    assert not business_admin.is_superuser


def test_a_business_admin_manages_a_customer_but_a_forged_post_grants_no_rights(client, business_admin, member):
    client.force_login(business_admin)
    url = reverse("admin:accounts_user_change", args=[member.pk])
    group = business_admin.groups.get()

    page = client.get(url).content.decode()
    response = client.post(url, user_form(member, full_name="Renamed", **RIGHTS, groups=[group.pk]))

    assert 'name="is_superuser"' not in page and 'name="groups"' not in page
    assert response.status_code == 302, response.content.decode()[:2000]
    member.refresh_from_db()
    assert member.full_name == "Renamed"
    assert (member.is_staff, member.is_superuser, member.is_service) == (False, False, False)
    assert not member.groups.exists()


def test_a_business_admin_cannot_set_the_password_of_a_superuser_or_other_staff(client, business_admin, superuser):
    colleague = User.objects.create_user(email="colleague@creditdesk.test", password="old-pass-123", is_staff=True)
    client.force_login(business_admin)

    for account in (superuser, colleague):
        url = reverse("admin:auth_user_password_change", args=[account.pk])
        response = client.post(url, {"password1": "Taken-over-9!", "password2": "Taken-over-9!"})

        assert response.status_code == 403
        account.refresh_from_db()
        assert not account.check_password("Taken-over-9!")


def test_a_business_admin_may_still_set_a_customers_password(client, business_admin, member):
    client.force_login(business_admin)
    url = reverse("admin:auth_user_password_change", args=[member.pk])

    response = client.post(url, {"password1": "Brand-new-pass-9!", "password2": "Brand-new-pass-9!"})

    assert response.status_code == 302, response.content.decode()[:2000]
    member.refresh_from_db()
    assert member.check_password("Brand-new-pass-9!")


def test_a_superuser_grants_staff_rights(client, superuser, member):
    client.force_login(superuser)
    url = reverse("admin:accounts_user_change", args=[member.pk])

    response = client.post(url, user_form(member, is_staff="on"))

    assert response.status_code == 302, response.content.decode()[:2000]
    member.refresh_from_db()
    assert member.is_staff


def test_no_one_sees_or_edits_a_totp_secret_or_recovery_codes_in_the_admin(client, business_admin, superuser, member):
    totp = enrol_totp(member)
    recovery = Authenticator.objects.get(user=member, type=Authenticator.Type.RECOVERY_CODES)
    data = {pk: Authenticator.objects.get(pk=pk).data for pk in (totp.pk, recovery.pk)}

    for staff_user in (business_admin, superuser):
        client.force_login(staff_user)
        for authenticator in (totp, recovery):
            url = reverse("admin:mfa_authenticator_change", args=[authenticator.pk])
            page = client.get(url).content.decode()
            response = client.post(url, {"user": str(member.pk), "type": "totp", "data": '{"secret": "forged"}'})

            assert "member@acme.test" in page
            assert 'name="data"' not in page
            assert not [value for value in data[authenticator.pk].values() if isinstance(value, str) and value in page]
            assert response.status_code == 403
            assert Authenticator.objects.get(pk=authenticator.pk).data == data[authenticator.pk]
    assert client.get(reverse("admin:mfa_authenticator_add")).status_code == 403


def test_a_business_admin_resets_a_customers_lost_device(
    client, business_admin, member, mailoutbox, django_capture_on_commit_callbacks
):
    totp = enrol_totp(member)
    client.force_login(business_admin)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:mfa_authenticator_delete", args=[totp.pk]), {"post": "yes"})

    assert response.status_code == 302, response.content.decode()[:2000]
    assert not Authenticator.objects.filter(user=member).exists()  # the recovery codes went too
    event = AuditEvent.objects.get(event="mfa.authenticator_removed")
    assert (event.actor, event.target, event.organization) == (
        business_admin,
        member.email,
        member.membership.organization,
    )
    assert event.old_value == {"types": ["totp", "recovery_codes"]}
    assert [message.to for message in mailoutbox] == [[member.email]]
    assert "two-factor authentication was removed" in mailoutbox[0].subject


def test_only_a_superuser_removes_a_staff_members_second_factor(client, business_admin, superuser):
    totp = enrol_totp(superuser)
    client.force_login(business_admin)
    url = reverse("admin:mfa_authenticator_delete", args=[totp.pk])

    assert client.post(url, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:mfa_authenticator_changelist")
    bulk = client.post(changelist, {"action": "delete_selected", "_selected_action": [totp.pk], "post": "yes"})
    assert bulk.status_code == 403
    assert Authenticator.objects.filter(pk=totp.pk).exists()

    client.force_login(superuser)
    assert client.post(url, {"post": "yes"}).status_code == 302
    assert not Authenticator.objects.filter(user=superuser).exists()


def test_an_organization_added_in_the_admin_gets_its_wallet_and_reaches_redis(
    client, business_admin, redis_client, django_capture_on_commit_callbacks
):
    client.force_login(business_admin)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:accounts_organization_add"), {"name": "Initech", "slug": "", "_save": "Save"}
        )

    assert response.status_code == 302, response.content.decode()[:2000]
    organization = Organization.objects.get(name="Initech")
    assert (organization.slug, organization.plan_id) == ("initech", "free")
    wallet = Account.objects.get(organization=organization)
    assert redis_client.hgetall(f"creditdesk:org:{organization.pk}")["version"] == str(wallet.version)
    assert response["Location"] == reverse("admin:accounts_organization_changelist")


def test_an_organization_added_in_the_admin_keeps_the_slug_given(client, superuser, organization):
    client.force_login(superuser)
    url = reverse("admin:accounts_organization_add")

    taken = client.post(url, {"name": "Another Acme", "slug": organization.slug})
    response = client.post(url, {"name": "Initech", "slug": "Initech-EU"})

    assert taken.status_code == 200 and "already exists" in taken.content.decode()
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Account.objects.filter(organization__slug="initech-eu").exists()


def test_invitations_are_made_in_the_portal_not_added_or_edited_in_the_admin(
    client, business_admin, owner, organization
):
    invitation = invite_member(organization=organization, email="new@example.test", role="member", invited_by=owner)
    client.force_login(business_admin)
    url = reverse("admin:accounts_invitation_change", args=[invitation.pk])

    added = client.post(reverse("admin:accounts_invitation_add"), {"email": "x@example.test", "role": "member"})
    edited = client.post(url, {"email": "someone-else@example.test", "organization": organization.pk, "role": "member"})

    assert (added.status_code, edited.status_code) == (403, 403)
    assert list(Invitation.objects.values_list("email", flat=True)) == ["new@example.test"]


def test_staff_revoke_an_invitation_in_the_admin(client, business_admin, owner, organization):
    invitation = invite_member(organization=organization, email="new@example.test", role="member", invited_by=owner)
    client.force_login(business_admin)

    response = client.post(
        reverse("admin:accounts_invitation_changelist"),
        {"action": "revoke_selected", "_selected_action": [invitation.pk]},
    )

    assert response.status_code == 302
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    assert AuditEvent.objects.filter(event="member.invitation_revoked", actor=business_admin).exists()


def test_a_customer_opening_the_admin_is_told_it_is_for_staff(client, owner):
    client.force_login(owner)

    response = client.get("/admin/", follow=True)

    assert response.status_code == 403
    page = response.content.decode()
    assert "The admin is for Creditdesk staff only." in page
    assert "Your role in the organization" not in page


def test_oauth_app_secrets_are_for_superusers_only_and_users_tokens_for_nobody(client, business_admin, superuser):
    """Found from outside: business admins could read every OAuth app's client secret and
    the first 40 characters of users' OAuth tokens."""
    from allauth.socialaccount.models import SocialApp, SocialToken

    app = SocialApp.objects.create(provider="github", name="GitHub", client_id="gh-id", secret="gh-client-secret")
    client.force_login(business_admin)

    assert client.get(reverse("admin:socialaccount_socialapp_changelist")).status_code == 403
    change = client.get(reverse("admin:socialaccount_socialapp_change", args=[app.pk]))
    assert change.status_code == 403 and b"gh-client-secret" not in change.content
    assert client.get(reverse("admin:socialaccount_socialaccount_changelist")).status_code == 200
    assert SocialToken not in admin.site._registry

    client.force_login(superuser)
    assert b"gh-client-secret" in client.get(reverse("admin:socialaccount_socialapp_change", args=[app.pk])).content


def test_business_admins_hold_no_permission_on_the_models_that_hold_oauth_secrets(business_admin):
    from django.apps import apps
    from django.contrib.auth.models import Group, Permission

    from accounts.permissions import BUSINESS_ADMINS, grant_business_admin_permissions

    group = Group.objects.get(name=BUSINESS_ADMINS)
    group.permissions.add(Permission.objects.get(codename="view_socialapp"))  # as earlier versions granted
    grant_business_admin_permissions(apps=apps)  # what every migrate runs

    codenames = User.objects.get(pk=business_admin.pk).get_all_permissions()
    assert "socialaccount.view_socialaccount" in codenames
    assert not {c for c in codenames if c.endswith(("_socialapp", "_socialtoken"))}
