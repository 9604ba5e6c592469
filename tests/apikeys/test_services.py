import re
from datetime import timedelta

import pytest
from django.utils import timezone

from apikeys.errors import ApiKeyLimitReached, ExpiryInPast, InvalidKeyName, InvalidScopes, NotAMember
from apikeys.models import ApiKey, hash_key
from apikeys.services import expire_api_keys, issue_api_key, revoke_api_key
from core.models import AuditEvent, OutboxItem


def test_issue_api_key_returns_the_raw_key_once_and_stores_only_its_hash_and_prefix(owner, organization):
    api_key, raw_key = issue_api_key(organization=organization, created_by=owner, name="production")

    assert re.fullmatch(r"cdk_live_[A-Za-z0-9_-]{32,}", raw_key)
    assert api_key.key_hash == hash_key(raw_key)
    assert api_key.prefix == raw_key[:12]
    assert api_key.scopes == ["query"]
    assert api_key.status == ApiKey.Status.ACTIVE
    stored = ApiKey.objects.filter(pk=api_key.pk).values()[0]
    assert raw_key not in repr(stored)


def test_two_keys_never_share_a_secret(owner, organization):
    organization.plan.max_api_keys = None
    organization.plan.save()
    raws = {issue_api_key(organization=organization, created_by=owner, name=f"k{i}")[1] for i in range(5)}
    assert len(raws) == 5


def test_issue_api_key_writes_an_audit_row_and_an_outbox_row(owner, organization, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        api_key, _ = issue_api_key(organization=organization, created_by=owner, name="ci")

    event = AuditEvent.objects.get(event="api_key.issued")
    assert event.actor == owner and event.organization == organization and event.target == f"api_key:{api_key.pk}"
    assert OutboxItem.objects.pending().filter(topic="key", object_id=api_key.pk).exists()
    assert callbacks  # the Redis push is registered for after commit


def test_scopes_are_validated_deduplicated_and_default_to_query(owner, organization):
    api_key, _ = issue_api_key(organization=organization, created_by=owner, name="a", scopes="query,read:usage,query")
    assert api_key.scopes == ["query", "read:usage"]
    api_key, _ = issue_api_key(organization=organization, created_by=owner, name="b", scopes=[])
    assert api_key.scopes == ["query"]
    for bad in (["Query"], ["has space"], ["a" * 65], [5]):
        with pytest.raises(InvalidScopes):
            issue_api_key(organization=organization, created_by=owner, name="c", scopes=bad)


def test_a_name_is_required(owner, organization):
    with pytest.raises(InvalidKeyName):
        issue_api_key(organization=organization, created_by=owner, name="  ")
    with pytest.raises(InvalidKeyName):
        issue_api_key(organization=organization, created_by=owner, name="x" * 101)


@pytest.mark.parametrize("name", ["tab\tname\x01", "line\nbreak", "bell\x07", "del\x7f", "c1\x85x", "esc\x1b[31m"])
def test_a_name_with_control_characters_is_refused_and_nothing_is_created(owner, organization, name):
    with pytest.raises(InvalidKeyName, match="cannot contain control characters"):
        issue_api_key(organization=organization, created_by=owner, name=name)
    assert not ApiKey.objects.exists()
    assert not AuditEvent.objects.filter(event="api_key.issued").exists()


def test_a_name_may_hold_any_printable_text_and_is_stripped(owner, organization):
    api_key, _ = issue_api_key(organization=organization, created_by=owner, name="  Prod — Zürich 🔑 #2  ")
    assert api_key.name == "Prod — Zürich 🔑 #2"


def test_an_expiry_in_the_past_is_refused_and_nothing_is_created(owner, organization):
    with pytest.raises(ExpiryInPast):
        issue_api_key(
            organization=organization, created_by=owner, name="old", expires_at=timezone.now() - timedelta(seconds=1)
        )
    assert not ApiKey.objects.exists()
    assert not OutboxItem.objects.pending().filter(topic="key").exists()


def test_the_creator_must_belong_to_the_organization(outsider, organization):
    with pytest.raises(NotAMember):
        issue_api_key(organization=organization, created_by=outsider, name="sneaky")


def test_the_plans_max_api_keys_caps_active_keys_with_a_clear_error(owner, organization):
    plan = organization.plan
    plan.max_api_keys = 2
    plan.save()
    first, _ = issue_api_key(organization=organization, created_by=owner, name="one")
    issue_api_key(organization=organization, created_by=owner, name="two")

    with pytest.raises(ApiKeyLimitReached) as excinfo:
        issue_api_key(organization=organization, created_by=owner, name="three")
    assert "allows 2 active API keys" in excinfo.value.message
    assert excinfo.value.code == "api_key_limit_reached"

    revoke_api_key(api_key=first, actor=owner)
    issue_api_key(organization=organization, created_by=owner, name="three")
    assert ApiKey.objects.filter(status="active").count() == 2


def test_revoke_api_key_is_idempotent_and_audited_once(owner, issued_key):
    api_key, _ = issued_key
    revoked = revoke_api_key(api_key=api_key, actor=owner)
    again = revoke_api_key(api_key=api_key, actor=owner)

    assert revoked.status == again.status == ApiKey.Status.REVOKED
    assert again.revoked_at == revoked.revoked_at
    assert revoked.revoked_by == owner
    assert AuditEvent.objects.filter(event="api_key.revoked").count() == 1


def test_expire_api_keys_marks_only_keys_past_their_expiry(owner, organization):
    soon = timezone.now() + timedelta(minutes=5)
    expiring, _ = issue_api_key(organization=organization, created_by=owner, name="soon", expires_at=soon)
    lasting, _ = issue_api_key(organization=organization, created_by=owner, name="lasting")

    assert expire_api_keys(now=timezone.now()) == []
    assert expire_api_keys(now=soon + timedelta(seconds=1)) == [expiring.pk]
    assert expire_api_keys(now=soon + timedelta(seconds=2)) == []  # idempotent

    expiring.refresh_from_db()
    lasting.refresh_from_db()
    assert expiring.status == ApiKey.Status.EXPIRED
    assert lasting.status == ApiKey.Status.ACTIVE
