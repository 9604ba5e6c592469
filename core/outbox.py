"""Record changes for Redis in the transaction that makes them; push them after commit.

`record_changes` upserts one outbox row per object, stamped and pending (cheap: the wallet
row is already locked by the same transaction), and registers the after-commit push
(`push_after_commit`, also used by the one-statement postings, which upsert their outbox
row in SQL). If the process dies between commit and push, the periodic drain task finds
the row still pending.
"""

from collections.abc import Iterable

from django.utils import timezone

from core.effects import on_commit
from core.models import OutboxItem


def record_changes(topic: str, object_ids: Iterable[int]) -> None:
    ids = sorted(set(object_ids))
    if not ids:
        return
    now = timezone.now()
    OutboxItem.objects.bulk_create(
        [OutboxItem(topic=topic, object_id=object_id, changed_at=now) for object_id in ids],
        update_conflicts=True,
        unique_fields=["topic", "object_id"],
        update_fields=["changed_at", "pushed_at"],  # pending again, whatever the new stamp
    )
    push_after_commit(topic, ids)


def push_after_commit(topic: str, object_ids: Iterable[int]) -> None:
    """Publish these objects to Redis once the current transaction commits (core.publisher.publish)."""
    ids = sorted(set(object_ids))

    def push() -> None:
        from core.publisher import publish

        publish(topic, ids)

    on_commit(push)


def record_org_change(org_id: int) -> None:
    record_changes(OutboxItem.Topic.ORG, [org_id])


def record_key_change(key_id: int) -> None:
    record_changes(OutboxItem.Topic.KEY, [key_id])


__all__ = ["push_after_commit", "record_changes", "record_key_change", "record_org_change"]
