"""The contract's Redis hashes (section 3) after every kind of committed change."""

from datetime import timedelta
from io import StringIO

import pytest
import redis
from django.core.management import call_command
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.services import issue_api_key, revoke_api_key
from core import publisher
from core.models import OutboxItem
from core.redis import set_redis_client
from core.tasks import expire_api_keys
from credits.models import Account
from credits.services import grant_credits, spend_credits


def key_hash(client, api_key):
    return client.hgetall(f"creditdesk:key:{api_key.key_hash}")


def org_hash(client, organization):
    return client.hgetall(f"creditdesk:org:{organization.pk}")


def wallet_of(organization):
    return Account.objects.get(organization=organization)


def test_a_new_key_is_published_with_the_contracts_fields(
    owner, organization, redis_client, django_capture_on_commit_callbacks
):
    expires = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    with django_capture_on_commit_callbacks(execute=True):
        api_key, _ = issue_api_key(
            organization=organization, created_by=owner, name="ci", scopes=["query", "read:usage"], expires_at=expires
        )

    assert key_hash(redis_client, api_key) == {
        "api_key_id": str(api_key.pk),
        "user_id": str(owner.pk),
        "org_id": str(organization.pk),
        "status": "active",
        "scopes": "query,read:usage",
        "expires_at": expires.isoformat().replace("+00:00", "Z"),
    }
    assert not OutboxItem.objects.pending().filter(topic="key").exists()


def test_a_key_without_expiry_publishes_an_empty_expires_at(
    owner, organization, redis_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        api_key, _ = issue_api_key(organization=organization, created_by=owner, name="ci")
    assert key_hash(redis_client, api_key)["expires_at"] == ""
    assert key_hash(redis_client, api_key)["scopes"] == "query"


def test_a_revoked_key_is_published_as_revoked(owner, organization, redis_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        api_key, _ = issue_api_key(organization=organization, created_by=owner, name="ci")
    with django_capture_on_commit_callbacks(execute=True):
        revoke_api_key(api_key=api_key, actor=owner)
    assert key_hash(redis_client, api_key)["status"] == "revoked"
    assert not OutboxItem.objects.pending().filter(topic="key").exists()


def test_the_expiry_task_marks_keys_expired_in_the_database_and_in_redis(
    owner, organization, redis_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        api_key, _ = issue_api_key(
            organization=organization, created_by=owner, name="ci", expires_at=timezone.now() + timedelta(hours=1)
        )
    # An hour later (the expiry moved back instead of the clock forward).
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    with django_capture_on_commit_callbacks(execute=True):
        result = expire_api_keys.delay().get()

    assert result == {"expired": 1}
    api_key.refresh_from_db()
    assert api_key.status == ApiKey.Status.EXPIRED
    assert key_hash(redis_client, api_key)["status"] == "expired"
    with django_capture_on_commit_callbacks(execute=True):
        assert expire_api_keys.delay().get() == {"expired": 0}


def test_a_key_past_its_expiry_is_published_as_expired_even_before_the_sweep(owner, organization, redis_client):
    api_key, _ = issue_api_key(
        organization=organization, created_by=owner, name="ci", expires_at=timezone.now() + timedelta(hours=1)
    )
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    publisher.push_changes("key", [api_key.pk])
    assert key_hash(redis_client, api_key)["status"] == "expired"


def test_a_new_organization_and_a_grant_are_published(organization, redis_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        grant_credits(organization=organization, amount=100, reason="welcome")
    wallet = wallet_of(organization)

    assert org_hash(redis_client, organization) == {
        "balance": "100",
        "status": "active",
        "version": str(wallet.version),
        "low_threshold": "",
        "plan": "free",
    }
    assert not OutboxItem.objects.pending().filter(topic="org", object_id=organization.pk).exists()


def test_a_spend_lowers_the_balance_and_raises_the_version(
    organization, redis_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        grant_credits(organization=organization, amount=100, reason="welcome")
    before = int(org_hash(redis_client, organization)["version"])
    with django_capture_on_commit_callbacks(execute=True):
        spend_credits(organization=organization, amount=30, reason="usage")

    published = org_hash(redis_client, organization)
    assert published["balance"] == "70"
    assert int(published["version"]) == wallet_of(organization).version > before


def test_pause_and_resume_are_published(organization, redis_client, django_capture_on_commit_callbacks):
    from credits.services import pause_credits, resume_credits

    with django_capture_on_commit_callbacks(execute=True):
        pause_credits(organization=organization)
    assert org_hash(redis_client, organization)["status"] == "paused"
    paused_version = int(org_hash(redis_client, organization)["version"])

    with django_capture_on_commit_callbacks(execute=True):
        resume_credits(organization=organization)
    assert org_hash(redis_client, organization)["status"] == "active"
    assert int(org_hash(redis_client, organization)["version"]) == wallet_of(organization).version > paused_version


def test_a_low_credit_threshold_is_published(organization, redis_client, django_capture_on_commit_callbacks):
    from credits.services import set_wallet

    with django_capture_on_commit_callbacks(execute=True):
        set_wallet(organization=organization, low_credit_threshold=50)
    assert org_hash(redis_client, organization)["low_threshold"] == "50"
    with django_capture_on_commit_callbacks(execute=True):
        set_wallet(organization=organization, low_credit_threshold=None)
    assert org_hash(redis_client, organization)["low_threshold"] == ""


def test_a_plan_change_is_published(organization, redis_client, django_capture_on_commit_callbacks):
    from billing.services import change_plan

    with django_capture_on_commit_callbacks(execute=True):
        change_plan(organization=organization, plan_code="professional")
    published = org_hash(redis_client, organization)
    assert published["plan"] == "professional"
    assert int(published["version"]) == wallet_of(organization).version


def test_an_org_hash_is_never_replaced_by_an_older_version(organization, redis_client):
    name = f"creditdesk:org:{organization.pk}"
    newer = (organization.pk, 70, "active", 5, None, "free")
    older = (organization.pk, 100, "active", 4, None, "free")

    assert publisher.write_hashes(redis_client, "org", [newer]) == 1
    assert publisher.write_hashes(redis_client, "org", [older]) == 0
    assert redis_client.hgetall(name)["balance"] == "70"
    assert redis_client.hgetall(name)["version"] == "5"
    same_version = (organization.pk, 70, "paused", 5, 10, "starter")
    assert publisher.write_hashes(redis_client, "org", [same_version]) == 1
    assert redis_client.hgetall(name)["status"] == "paused"


def test_a_key_hash_never_moves_back_from_revoked(owner, organization, redis_client):
    api_key, _ = issue_api_key(organization=organization, created_by=owner, name="ci")
    row = (api_key.pk, api_key.key_hash, owner.pk, organization.pk, "active", ["query"], None)
    revoked = (*row[:4], "revoked", *row[5:])

    assert publisher.write_hashes(redis_client, "key", [revoked]) == 1
    assert publisher.write_hashes(redis_client, "key", [row]) == 0  # a slow push that read the key before
    assert key_hash(redis_client, api_key)["status"] == "revoked"


def test_a_change_committed_during_a_push_stays_pending(organization, redis_client, monkeypatch):
    grant_credits(organization=organization, amount=10, reason="first")
    real_load = publisher._load

    def load_then_another_commit(topic, ids):
        loaded = real_load(topic, ids)
        # Another transaction commits (and re-stamps the outbox row) after the push read the state.
        monkeypatch.setattr(publisher, "push_changes", lambda *args, **kwargs: True)
        grant_credits(organization=organization, amount=5, reason="second")
        return loaded

    monkeypatch.setattr(publisher, "_load", load_then_another_commit)
    real_push = publisher.push_changes
    assert real_push("org", [organization.pk])

    assert OutboxItem.objects.pending().filter(topic="org", object_id=organization.pk).exists()
    monkeypatch.undo()
    publisher.drain_outbox()
    assert org_hash(redis_client, organization)["balance"] == "15"
    assert not OutboxItem.objects.pending().exists()


def test_with_publishing_off_pushes_only_mark_the_outbox_rows_pushed(organization, settings):
    set_redis_client(None)
    settings.REDIS_PUBLISH_ENABLED = False
    grant_credits(organization=organization, amount=10, reason="offline")
    assert OutboxItem.objects.pending().filter(topic="org").exists()

    assert publisher.push_changes("org", [organization.pk])
    assert not OutboxItem.objects.pending().exists()


def test_an_objects_outbox_row_is_kept_and_restamped_in_place(organization, redis_client):
    grant_credits(organization=organization, amount=10, reason="first")
    assert publisher.push_changes("org", [organization.pk])
    first = OutboxItem.objects.get(topic="org", object_id=organization.pk)
    assert first.pushed_at == first.changed_at

    grant_credits(organization=organization, amount=5, reason="second")
    restamped = OutboxItem.objects.get(topic="org", object_id=organization.pk)
    assert restamped.pk == first.pk
    assert restamped.pushed_at is None
    assert list(OutboxItem.objects.pending()) == [restamped]

    assert publisher.push_changes("org", [organization.pk])
    assert not OutboxItem.objects.pending().exists()
    assert OutboxItem.objects.filter(topic="org").count() == 1
    assert org_hash(redis_client, organization)["balance"] == "15"


def test_the_drain_pushes_only_pending_rows(owner, organization, redis_client, monkeypatch):
    grant_credits(organization=organization, amount=10, reason="pushed")
    publisher.push_changes("org", [organization.pk])
    api_key, _ = issue_api_key(organization=organization, created_by=owner, name="never pushed")
    pushed: list[tuple[str, list[int]]] = []
    real_push = publisher.push_changes

    def recording_push(topic, ids, **kwargs):
        pushed.append((topic, sorted(ids)))
        return real_push(topic, ids, **kwargs)

    monkeypatch.setattr(publisher, "push_changes", recording_push)
    assert publisher.drain_outbox() == {"pushed": 1, "ok": True}
    assert pushed == [("key", [api_key.pk])]
    assert publisher.drain_outbox() == {"pushed": 0, "ok": True}


def closed_port_client():
    return redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2, decode_responses=True)


def test_with_redis_down_grants_commit_and_the_drain_repairs_redis_when_it_returns(
    owner, organization, redis_client, django_capture_on_commit_callbacks, caplog
):
    set_redis_client(closed_port_client())
    with django_capture_on_commit_callbacks(execute=True):
        grant_credits(organization=organization, amount=40, reason="during the outage")
        api_key, _ = issue_api_key(organization=organization, created_by=owner, name="during the outage")

    assert wallet_of(organization).balance == 40
    assert set(OutboxItem.objects.pending().values_list("topic", flat=True)) == {"org", "key"}
    assert "Redis publish" in caplog.text
    assert publisher.drain_outbox()["ok"] is False  # still down: the rows stay

    set_redis_client(redis_client)
    from core.tasks import drain_outbox

    assert drain_outbox.delay().get()["ok"] is True
    assert org_hash(redis_client, organization)["balance"] == "40"
    assert key_hash(redis_client, api_key)["status"] == "active"
    assert not OutboxItem.objects.pending().exists()


def test_the_drain_task_writes_every_hash_again_when_redis_comes_back_empty(
    owner, organization, outsider, redis_client, caplog, django_capture_on_commit_callbacks
):
    """Found from outside: Redis restarted without persistence stayed empty until the hourly
    reconcile, while the contract wants it back in line within 60 seconds."""
    grant_credits(organization=organization, amount=40, reason="before the restart")
    api_key, _ = issue_api_key(organization=organization, created_by=owner, name="before the restart")
    publisher.resync()
    redis_client.flushdb()
    with django_capture_on_commit_callbacks(execute=True):  # traffic writes a hash again at once
        grant_credits(organization=outsider.membership.organization, amount=5, reason="after the restart")

    from core.tasks import drain_outbox

    result = drain_outbox.delay().get()

    assert result["restored"] is True and result["ok"] is True
    assert org_hash(redis_client, organization)["balance"] == "40"
    assert org_hash(redis_client, outsider.membership.organization)["balance"] == "5"
    assert key_hash(redis_client, api_key)["status"] == "active"
    assert "restarted empty, flushed, or never synced" in caplog.text
    assert drain_outbox.delay().get()["restored"] is False


def test_a_failed_restore_still_lets_the_drain_run_and_only_one_restore_runs_at_a_time(
    organization, redis_client, monkeypatch, caplog
):
    """Found in review: a resync that failed raised out of the drain task (nothing drained,
    every 30 s), and a long one was started again by every drain meanwhile."""
    grant_credits(organization=organization, amount=5, reason="pending in the outbox")

    def broken_resync(**kwargs):
        raise redis.ConnectionError("Redis went away mid-write")

    monkeypatch.setattr(publisher, "resync", broken_resync)
    from core.tasks import drain_outbox

    result = drain_outbox.delay().get()

    assert result["restored"] is False and result["ok"] is True and result["pushed"] >= 1
    assert "restoring Redis failed" in caplog.text
    redis_client.set("creditdesk:publisher:restoring", "1")  # another worker's restore under way
    monkeypatch.setattr(publisher, "resync", lambda **kwargs: pytest.fail("a second restore"))
    assert publisher.restore_if_emptied() is False


def test_one_lost_hash_is_left_to_the_reconcile(organization, outsider, redis_client, monkeypatch):
    publisher.resync()
    redis_client.delete(f"creditdesk:org:{organization.pk}")
    monkeypatch.setattr(publisher, "resync", lambda **kwargs: pytest.fail("a full resync for one hash"))

    assert publisher.restore_if_emptied() is False


def test_the_reconcile_task_repairs_what_an_outage_lost_and_logs_each_difference(
    organization, redis_client, django_capture_on_commit_callbacks, caplog
):
    with django_capture_on_commit_callbacks(execute=True):
        grant_credits(organization=organization, amount=40, reason="before")
    set_redis_client(closed_port_client())
    with django_capture_on_commit_callbacks(execute=True):
        spend_credits(organization=organization, amount=15, reason="during the outage")
    OutboxItem.objects.all().delete()  # the process died: only the reconcile can tell
    set_redis_client(redis_client)
    assert org_hash(redis_client, organization)["balance"] == "40"

    from core.tasks import reconcile_redis

    result = reconcile_redis.delay().get()

    assert result["repaired"] >= 1
    assert org_hash(redis_client, organization)["balance"] == "25"
    assert f"org {organization.pk} differs" in caplog.text and "balance: redis='40' db='25'" in caplog.text
    assert reconcile_redis.delay().get()["repaired"] == 0  # idempotent


def test_reconcile_leaves_a_hash_that_is_ahead_of_the_database_and_logs_it(organization, redis_client, caplog):
    grant_credits(organization=organization, amount=5, reason="x")
    name = f"creditdesk:org:{organization.pk}"
    redis_client.hset(name, mapping={"version": "999", "balance": "1"})

    result = publisher.reconcile()

    assert result["ahead"] == 1
    assert redis_client.hget(name, "balance") == "1"
    assert "ahead of the database" in caplog.text


def test_redis_resync_from_an_empty_redis_matches_the_database(owner, member, organization, outsider, redis_client):
    grant_credits(organization=organization, amount=70, reason="x")
    keys = [issue_api_key(organization=organization, created_by=user, name="k")[0] for user in (owner, member)]
    revoke_api_key(api_key=keys[1])
    redis_client.flushdb()
    redis_client.hset("creditdesk:key:" + "0" * 64, mapping={"status": "active"})  # a key deleted since

    from io import StringIO

    out = StringIO()
    call_command("redis_resync", stdout=out)

    assert out.getvalue().strip().splitlines()[-1] == '{"keys": 2, "orgs": 2}'
    assert not redis_client.exists("creditdesk:key:" + "0" * 64)
    for api_key in keys:
        api_key.refresh_from_db()
        published = key_hash(redis_client, api_key)
        assert published["status"] == api_key.status
        assert published["api_key_id"] == str(api_key.pk)
        assert published["user_id"] == str(api_key.created_by_id)
    for org in (organization, outsider.membership.organization):
        wallet = wallet_of(org)
        assert org_hash(redis_client, org) == {
            "balance": str(wallet.balance),
            "status": wallet.status,
            "version": str(wallet.version),
            "low_threshold": "",
            "plan": org.plan_id,
        }
    assert publisher.reconcile()["repaired"] == 0


def test_redis_resync_respects_higher_versions_unless_forced(organization, redis_client):
    name = f"creditdesk:org:{organization.pk}"
    redis_client.hset(name, mapping={"version": "999", "balance": "1"})
    assert publisher.resync()["orgs"] == 0
    assert redis_client.hget(name, "balance") == "1"
    assert publisher.resync(force=True)["orgs"] == 1
    assert redis_client.hget(name, "balance") == "0"


def test_redis_resync_fails_clearly_when_publishing_is_off(db, settings):
    from django.core.management.base import CommandError

    set_redis_client(None)
    settings.REDIS_PUBLISH_ENABLED = False
    with pytest.raises(CommandError, match="publishing is off"):
        call_command("redis_resync")


def test_redis_resync_with_redis_unreachable_fails_with_a_message_not_a_traceback(organization, settings):
    import redis
    from django.core.management.base import CommandError

    settings.REDIS_PUBLISH_ENABLED = True
    set_redis_client(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1, decode_responses=True))
    try:
        with pytest.raises(CommandError, match=r"Redis cannot be reached .*run it again"):
            call_command("redis_resync")
    finally:
        set_redis_client(None)


def test_redis_resync_names_the_way_out_when_a_hash_has_another_type(organization, redis_client):
    from django.core.management.base import CommandError

    redis_client.set(f"creditdesk:org:{organization.pk}", "not a hash")
    with pytest.raises(CommandError, match="--force"):
        call_command("redis_resync")
    call_command("redis_resync", "--force", stdout=StringIO())
    assert redis_client.hget(f"creditdesk:org:{organization.pk}", "balance") == "0"


def test_with_redis_down_a_usage_report_still_commits_and_the_drain_repairs_redis(
    owner, organization, redis_client, django_capture_on_commit_callbacks
):
    import json

    from apikeys.services import create_service_account

    with django_capture_on_commit_callbacks(execute=True):
        grant_credits(organization=organization, amount=100, reason="start")
        api_key, _ = issue_api_key(organization=organization, created_by=owner, name="k")
    _, token = create_service_account(name="query-api")
    from django.test import Client

    set_redis_client(closed_port_client())
    with django_capture_on_commit_callbacks(execute=True):
        response = Client().post(
            "/api/usage/report",
            data=json.dumps({"userId": owner.pk, "apiKeyId": api_key.pk, "creditsUsed": 5, "queryType": "standard"}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Token {token}",
        )

    assert response.status_code == 201, response.content
    assert response.json()["remainingCredits"] == 95 == wallet_of(organization).balance
    assert org_hash(redis_client, organization)["balance"] == "100"  # Redis missed it
    assert OutboxItem.objects.pending().filter(topic="org", object_id=organization.pk).exists()

    set_redis_client(redis_client)
    publisher.drain_outbox()
    assert org_hash(redis_client, organization)["balance"] == "95"
    assert org_hash(redis_client, organization)["version"] == str(wallet_of(organization).version)
