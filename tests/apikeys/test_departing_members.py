"""A member who leaves an organization takes no working key of it along.

Found from outside: a member removed from the team kept a working key of the organization,
and the billing API then treated them as a client admin (their new personal
organization's role), so the key changed the old organization's plan.
"""

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.utils import timezone

from accounts.models import Membership
from accounts.services import accept_invitation, invite_member, remove_member
from apikeys.models import ApiKey, hash_key
from apikeys.services import issue_api_key, revoke_keys_of_departing_member
from billing.models import Subscription
from core.models import AuditEvent, OutboxItem

pytestmark = pytest.mark.django_db


def bearer(raw: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


@pytest.fixture
def sandbox(settings):
    """Payments by the sandbox provider, so that a plan change would go through."""
    settings.DEBUG = True
    settings.STRIPE_SECRET_KEY = ""
    settings.PAYPAL_CLIENT_ID = ""


@pytest.fixture
def member_keys(member, organization):
    """The member's keys: (active key, raw), (expired key, raw)."""
    active = issue_api_key(organization=organization, created_by=member, name="member's", scopes=["query", "billing"])
    expired = issue_api_key(
        organization=organization, created_by=member, name="old", expires_at=timezone.now() + timedelta(hours=1)
    )
    ApiKey.objects.filter(pk=expired[0].pk).update(  # as the periodic expiry task leaves it
        expires_at=timezone.now() - timedelta(minutes=1), status=ApiKey.Status.EXPIRED
    )
    return active, expired


def test_removing_a_member_revokes_the_keys_they_created_there_and_no_others(
    member_keys, member, owner, organization, redis_client, django_capture_on_commit_callbacks
):
    owners_key, _ = issue_api_key(organization=organization, created_by=owner, name="owner's")
    (active, raw), (expired, _) = member_keys

    with django_capture_on_commit_callbacks(execute=True):
        remove_member(membership=member.membership, actor=owner)

    assert set(ApiKey.objects.filter(status=ApiKey.Status.REVOKED).values_list("pk", flat=True)) == {
        active.pk,
        expired.pk,
    }
    active.refresh_from_db()
    assert active.revoked_by == owner and active.revoked_at is not None
    assert ApiKey.objects.get(pk=owners_key.pk).status == ApiKey.Status.ACTIVE
    revoked_events = AuditEvent.objects.filter(event="api_key.revoked", organization=organization)
    assert {event.target for event in revoked_events} == {f"api_key:{active.pk}", f"api_key:{expired.pk}"}
    assert {event.old_value["status"] for event in revoked_events} == {"active", "expired"}
    # The public query API reads the status from Redis: it turns with the commit.
    assert redis_client.hget(f"creditdesk:key:{hash_key(raw)}", "status") == "revoked"
    assert not OutboxItem.objects.pending().filter(topic="key", object_id__in=[active.pk, expired.pk]).exists()


def test_the_removed_members_key_no_longer_works_on_the_customer_or_service_api(
    client, member_keys, member, owner, organization, sandbox
):
    (_, raw), _ = member_keys
    assert client.get("/api/credits/balance", **bearer(raw)).status_code == 200

    remove_member(membership=member.membership, actor=owner)

    assert client.get("/api/credits/balance", **bearer(raw)).status_code == 401
    changed = client.post(
        "/api/subscription/change", {"plan": "starter"}, content_type="application/json", **bearer(raw)
    )
    assert changed.status_code == 401
    organization.refresh_from_db()
    assert organization.plan_id == "free"
    assert not Subscription.objects.filter(organization=organization).exists()


def test_moving_to_another_organization_by_invitation_revokes_the_keys_left_behind(
    member_keys, member, organization, outsider
):
    (active, _), _ = member_keys
    invitation = invite_member(
        organization=outsider.membership.organization, email=member.email, role="member", invited_by=outsider
    )

    accept_invitation(invitation=invitation, user=member, confirm_move=True)

    assert ApiKey.objects.get(pk=active.pk).status == ApiKey.Status.REVOKED
    assert AuditEvent.objects.filter(event="api_key.revoked", target=f"api_key:{active.pk}").exists()


def test_a_key_whose_creator_no_longer_belongs_does_not_authenticate(client, member_keys, member, outsider):
    """Keys left behind before departures revoked them (the migration revokes those too)."""
    (_, raw), _ = member_keys
    Membership.objects.filter(user=member).update(organization=outsider.membership.organization)

    response = client.get("/api/credits/balance", **bearer(raw))

    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


def test_revoking_a_departing_members_keys_twice_changes_nothing_more(member_keys, member, organization, owner):
    first = revoke_keys_of_departing_member(user=member, organization=organization, actor=owner)
    again = revoke_keys_of_departing_member(user=member, organization=organization, actor=owner)

    assert len(first) == 2 and again == []
    assert AuditEvent.objects.filter(event="api_key.revoked").count() == 2


def test_the_migration_revokes_keys_whose_creator_already_left(member_keys, member, owner, organization, outsider):
    migration = importlib.import_module("apikeys.migrations.0004_revoke_keys_of_departed_creators")
    owners_key, _ = issue_api_key(organization=organization, created_by=owner, name="owner's")
    (active, _), (expired, _) = member_keys
    Membership.objects.filter(user=member).update(organization=outsider.membership.organization)

    migration.revoke_keys_of_departed_creators(apps, None)

    assert ApiKey.objects.get(pk=active.pk).status == ApiKey.Status.REVOKED
    assert ApiKey.objects.get(pk=expired.pk).status == ApiKey.Status.REVOKED
    assert ApiKey.objects.get(pk=owners_key.pk).status == ApiKey.Status.ACTIVE
    assert set(OutboxItem.objects.pending().filter(topic="key").values_list("object_id", flat=True)) >= {
        active.pk,
        expired.pk,
    }


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_key_is_not_issued_to_a_member_whose_removal_commits_meanwhile(member, owner, organization):
    """Found in review: the membership check ran before the organization's lock, so a key
    requested while the member's removal committed was issued, active, after their keys had
    been revoked."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection, transaction

    from apikeys.errors import NotAMember
    from tests.credits.conftest import wait_for_a_lock_waiter

    def issue():
        try:
            return issue_api_key(organization=organization, created_by=member, name="late")
        except NotAMember:
            return None
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        with transaction.atomic():
            remove_member(membership=member.membership, actor=owner)  # holds the organization's lock
            issued = pool.submit(issue)
            assert wait_for_a_lock_waiter("accounts_organization")
        assert issued.result(timeout=10) is None

    assert not ApiKey.objects.filter(created_by=member, organization=organization).exists()


def test_memberships_are_read_only_in_the_admin(client, superuser, member):
    from django.urls import reverse

    client.force_login(superuser)

    assert client.get(reverse("admin:accounts_membership_changelist")).status_code == 200
    delete = reverse("admin:accounts_membership_delete", args=[member.membership.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert Membership.objects.filter(pk=member.membership.pk).exists()
