"""Idempotency keys are kept seven days, then released by the periodic task; the history stays."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from usage.models import UsageEvent
from usage.services import UsageReport, record_usage
from usage.tasks import purge_idempotency_keys


def _report(owner, api_key, key="evt-1", credits=5):
    return UsageReport(
        user_id=owner.pk, api_key_id=api_key.pk, credits=credits, query_type="standard", idempotency_key=key
    )


def test_a_key_older_than_seven_days_is_released_and_may_be_used_again(owner, api_key, funded):
    old = record_usage(report=_report(owner, api_key), now=timezone.now() - timedelta(days=7, minutes=1))

    assert purge_idempotency_keys.delay().get() == 1

    again = record_usage(report=_report(owner, api_key))
    assert again.duplicate is False and again.usage_id != old.usage_id
    first = UsageEvent.objects.get(pk=old.usage_id)
    assert first.idempotency_key == "evt-1" and first.idempotency_key_active is False
    assert UsageEvent.objects.count() == 2


def test_a_key_younger_than_seven_days_still_replays(owner, api_key, funded):
    first = record_usage(report=_report(owner, api_key), now=timezone.now() - timedelta(days=6, hours=23))

    assert purge_idempotency_keys.delay().get() == 0

    again = record_usage(report=_report(owner, api_key))
    assert again.duplicate is True and again.usage_id == first.usage_id


def test_the_purge_runs_in_chunks_until_done(owner, api_key, funded):
    from usage.services import purge_idempotency_keys as purge

    for n in range(5):
        record_usage(report=_report(owner, api_key, key=f"k{n}", credits=1), now=timezone.now() - timedelta(days=8))

    assert purge(chunk_size=2) == 5
    assert not UsageEvent.objects.filter(idempotency_key_active=True).exists()


def test_the_purge_is_scheduled():
    entries = [entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()]
    assert "usage.tasks.purge_idempotency_keys" in entries
