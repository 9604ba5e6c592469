from datetime import timedelta
from urllib.parse import urlparse

import pytest
from django.contrib.auth.models import Group, Permission
from django.core import mail
from django.utils import timezone

from accounts import invitations
from accounts.errors import (
    AlreadyMember,
    InvitationExpired,
    InvitationInvalid,
    InvitationNotForYou,
    LastClientAdmin,
    MoveNeedsConfirmation,
    NotClientAdmin,
)
from accounts.models import Invitation, Membership, User
from accounts.permissions import BUSINESS_ADMINS
from accounts.services import (
    accept_invitation,
    change_member_role,
    invite_member,
    move_user_to_organization,
    remove_member,
)
from core.models import AuditEvent
from credits.models import Account
from credits.services import grant_credits
from tests.accounts.helpers import links_in_last_email, log_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def invite(owner, organization, django_capture_on_commit_callbacks):
    def make(email="new@example.test", role="member"):
        with django_capture_on_commit_callbacks(execute=True):
            return invite_member(organization=organization, email=email, role=role, invited_by=owner)

    return make


def test_an_invitation_is_emailed_after_commit_with_a_signed_link(invite, organization):
    invitation = invite("new@example.test")
    assert mail.outbox[-1].to == ["new@example.test"]
    assert organization.name in mail.outbox[-1].subject
    link = next(link for link in links_in_last_email() if "/invitations/" in link)
    assert invitations.load_invitation(urlparse(link).path.split("/")[2]) == invitation
    assert AuditEvent.objects.filter(event="member.invited", target="new@example.test").exists()


def test_signing_up_through_the_link_joins_the_organization(client, invite, organization):
    invite("new@example.test", role="client_admin")
    path = urlparse(next(link for link in links_in_last_email() if "/invitations/" in link)).path
    assert client.get(path).status_code == 200

    client.post(
        "/accounts/signup/",
        {"email": "new@example.test", "password1": "a-long-unusual-pass-42", "password2": "a-long-unusual-pass-42"},
    )

    membership = User.objects.get(email="new@example.test").membership
    assert (membership.organization, membership.role) == (organization, "client_admin")
    assert Invitation.objects.get().accepted_at is not None


def test_logging_in_after_opening_the_link_shows_the_invitation_and_moving_needs_confirmation(
    client, invite, organization, outsider
):
    invite("outsider@globex.test")
    path = urlparse(next(link for link in links_in_last_email() if "/invitations/" in link)).path
    client.get(path)
    response = log_in(client, "outsider@globex.test")
    assert response["Location"] == path
    page = client.get(path).content.decode()
    assert "moves you out of it" in page

    client.post(path)  # no confirmation: nothing moves
    assert User.objects.get(pk=outsider.pk).membership.organization.slug == "globex"

    response = client.post(path, {"confirm": "1"})
    assert response["Location"] == "/dashboard/"
    outsider.refresh_from_db()
    assert outsider.membership.organization == organization


def test_an_organization_left_without_members_is_inactive_and_keeps_its_ledger(invite, outsider):
    globex = outsider.membership.organization
    grant_credits(organization=globex, amount=50, reason="welcome")
    invitation = invite("outsider@globex.test")

    with pytest.raises(MoveNeedsConfirmation):
        accept_invitation(invitation=invitation, user=outsider)
    accept_invitation(invitation=invitation, user=outsider, confirm_move=True)

    globex.refresh_from_db()
    assert not globex.is_active
    assert Account.objects.get(organization=globex).balance == 50
    assert AuditEvent.objects.filter(event="organization.deactivated", organization=globex).exists()


def test_an_expired_invitation_is_refused(invite, outsider, client):
    invitation = invite("outsider@globex.test")
    token = invitations.make_token(invitation)
    Invitation.objects.filter(pk=invitation.pk).update(created_at=timezone.now() - timedelta(days=8))
    with pytest.raises(InvitationExpired):
        accept_invitation(invitation=Invitation.objects.get(pk=invitation.pk), user=outsider, confirm_move=True)
    client.force_login(outsider)
    assert client.get(f"/invitations/{token}/").status_code == 410


def test_an_expired_signature_is_refused(invite, monkeypatch):
    invitation = invite()
    token = invitations.make_token(invitation)
    from django.core import signing

    later = timezone.now().timestamp() + 8 * 86400
    monkeypatch.setattr(signing.time, "time", lambda: later)
    with pytest.raises(InvitationExpired):
        invitations.load_invitation(token)


def test_a_tampered_link_is_refused(invite, client, outsider):
    invitation = invite()
    other = invite("second@example.test")
    token = invitations.make_token(invitation)
    forged = f"{other.pk}{token[len(str(invitation.pk)) :]}"
    with pytest.raises(InvitationInvalid):
        invitations.load_invitation(forged)
    with pytest.raises(InvitationInvalid):
        invitations.load_invitation(token[:-2] + "xx")
    client.force_login(outsider)
    assert client.get(f"/invitations/{forged}/").status_code == 404
    assert client.post(f"/invitations/{forged}/", {"confirm": "1"}).status_code == 404


def test_an_invitation_for_another_address_is_not_found(invite, outsider, client):
    invitation = invite("someone-else@example.test")
    with pytest.raises(InvitationNotForYou):
        accept_invitation(invitation=invitation, user=outsider, confirm_move=True)
    client.force_login(outsider)
    response = client.post(f"/invitations/{invitations.make_token(invitation)}/", {"confirm": "1"})
    assert response.status_code == 404
    assert outsider.membership.organization.slug == "globex"


def test_an_accepted_invitation_cannot_be_used_again(invite, outsider):
    invitation = invite("outsider@globex.test")
    accept_invitation(invitation=invitation, user=outsider, confirm_move=True)
    with pytest.raises(InvitationInvalid):
        accept_invitation(invitation=invitation, user=outsider, confirm_move=True)


def test_inviting_an_existing_member_is_refused(invite, member):
    with pytest.raises(AlreadyMember):
        invite("MEMBER@acme.test")


def test_inviting_twice_refreshes_the_pending_invitation(invite):
    first = invite("new@example.test", role="member")
    second = invite("New@Example.test", role="client_admin")
    assert first.pk == second.pk
    assert Invitation.objects.get().role == "client_admin"


def test_only_client_admins_invite(organization, member):
    with pytest.raises(NotClientAdmin):
        invite_member(organization=organization, email="x@example.test", role="member", invited_by=member)


def test_role_changes_are_audited(owner, member):
    change_member_role(membership=member.membership, role="client_admin", actor=owner)
    member.membership.refresh_from_db()
    assert member.membership.role == "client_admin"
    event = AuditEvent.objects.get(event="member.role_changed")
    assert (event.actor, event.old_value, event.new_value) == (owner, {"role": "member"}, {"role": "client_admin"})


def test_the_last_client_admin_cannot_be_demoted_or_removed(owner, member):
    with pytest.raises(LastClientAdmin):
        change_member_role(membership=owner.membership, role="member", actor=owner)
    with pytest.raises(LastClientAdmin):
        remove_member(membership=owner.membership, actor=owner)
    change_member_role(membership=member.membership, role="client_admin", actor=owner)
    change_member_role(membership=owner.membership, role="member", actor=member)
    assert Membership.objects.get(user=owner).role == "member"


def test_the_last_client_admin_cannot_leave_members_behind(owner, member, outsider):
    with pytest.raises(LastClientAdmin):
        move_user_to_organization(user=owner, organization=outsider.membership.organization, role="member")


def test_members_cannot_change_roles(owner, member):
    with pytest.raises(NotClientAdmin):
        change_member_role(membership=owner.membership, role="member", actor=member)


def test_a_removed_member_gets_a_personal_organization_and_loses_access(client, owner, member, organization):
    remove_member(membership=member.membership, actor=owner)
    member.refresh_from_db()
    assert member.membership.organization != organization
    assert member.membership.role == "client_admin"
    assert AuditEvent.objects.filter(event="member.removed", target="member@acme.test").exists()


def test_team_page_lists_members_and_pending_invitations(client, owner, member, invite):
    invite("pending@example.test")
    log_in(client, "owner@acme.test")
    html = client.get("/team/").content.decode()
    assert "member@acme.test" in html and "pending@example.test" in html


def test_team_page_actions_for_a_client_admin(client, owner, member, django_capture_on_commit_callbacks):
    log_in(client, "owner@acme.test")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/team/invite/", {"email": "colleague@example.test", "role": "member"})
    assert response["Location"] == "/team/"
    assert mail.outbox[-1].to == ["colleague@example.test"]
    invitation = Invitation.objects.get(email="colleague@example.test")

    client.post(f"/team/members/{member.membership.pk}/role/", {"role": "client_admin"})
    assert Membership.objects.get(user=member).role == "client_admin"
    client.post(f"/team/invitations/{invitation.pk}/revoke/")
    assert Invitation.objects.get(pk=invitation.pk).revoked_at is not None
    client.post(f"/team/members/{member.membership.pk}/remove/")
    assert Membership.objects.get(user=member).organization.slug != "acme"


def test_team_page_refuses_bad_input_and_changes_nothing(client, owner, member):
    log_in(client, "owner@acme.test")
    response = client.post(f"/team/members/{member.membership.pk}/role/", {"role": "superuser"}, follow=True)
    assert "Choose a valid role" in response.content.decode()
    assert Membership.objects.get(user=member).role == "member"
    response = client.post("/team/invite/", {"email": "not-an-email", "role": "member"}, follow=True)
    assert "valid email" in response.content.decode()
    assert not Invitation.objects.exists()
    assert client.get("/team/invite/").status_code == 405


def test_a_member_sees_the_team_but_cannot_manage_it(client, owner, member):
    log_in(client, "member@acme.test")
    html = client.get("/team/").content.decode()
    assert "owner@acme.test" in html and "Send invitation" not in html
    client.post(f"/team/members/{owner.membership.pk}/remove/")
    assert Membership.objects.get(user=owner).organization.slug == "acme"


def test_business_admins_group_has_model_permissions(db):
    group = Group.objects.get(name=BUSINESS_ADMINS)
    codenames = set(group.permissions.values_list("content_type__app_label", "codename"))
    assert ("accounts", "change_organization") in codenames
    assert ("accounts", "change_loginlockout") in codenames
    assert ("credits", "view_transaction") in codenames
    assert ("credits", "change_transaction") not in codenames
    assert ("core", "view_auditevent") in codenames
    # the only deletion: a customer's second factor, when they lost the device
    assert {c for c in codenames if c[1].startswith("delete_")} == {("mfa", "delete_authenticator")}
    assert ("mfa", "change_authenticator") not in codenames and ("mfa", "add_authenticator") not in codenames
    assert Permission.objects.filter(content_type__app_label="djstripe").exists()
    assert any(label == "djstripe" for label, _ in codenames)


def test_the_invitation_email_task_skips_an_invitation_no_longer_pending(invite, outsider):
    from accounts.tasks import send_invitation_email

    invitation = invite("outsider@globex.test")
    accept_invitation(invitation=invitation, user=outsider, confirm_move=True)
    sent = len(mail.outbox)
    send_invitation_email(invitation.pk)  # a second delivery of the queued task
    assert len(mail.outbox) == sent
