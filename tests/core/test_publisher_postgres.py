"""The after-commit push on PostgreSQL, outside any transaction, as it runs in production."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from core import publisher
from core.models import OutboxItem
from credits.services import grant_credits

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def stamped_row(organization) -> OutboxItem:
    """An outbox row as a posting leaves it (written directly: a committed grant would push at once)."""
    row, _ = OutboxItem.objects.update_or_create(
        topic="org", object_id=organization.pk, defaults={"changed_at": timezone.now(), "pushed_at": None}
    )
    return row


def test_a_push_outside_a_transaction_marks_the_outbox_row_pushed_and_publishes(organization, redis_client):
    grant_credits(organization=organization, amount=10, reason="top-up")
    assert not connection.in_atomic_block

    assert publisher.push_changes("org", [organization.pk])

    assert not OutboxItem.objects.pending().filter(topic="org", object_id=organization.pk).exists()
    assert redis_client.hget(f"creditdesk:org:{organization.pk}", "balance") == "10"


def test_a_row_restamped_after_the_push_read_it_stays_pending(organization, redis_client):
    row = stamped_row(organization)
    publisher._mark_pushed("org", [(organization.pk, row.changed_at - timedelta(seconds=1))])
    assert OutboxItem.objects.pending().filter(pk=row.pk).exists()

    publisher._mark_pushed("org", [(organization.pk, row.changed_at)])
    assert not OutboxItem.objects.pending().filter(pk=row.pk).exists()


def test_marking_skips_a_row_another_transaction_holds_instead_of_waiting(organization):
    import psycopg

    row = stamped_row(organization)
    settings = connection.settings_dict
    other = psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
    )
    try:
        # Another transaction re-stamps the row and has not committed yet (a batch mid-way).
        other.execute("SELECT id FROM core_outboxitem WHERE id = %s FOR UPDATE", [row.pk])
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
        publisher._mark_pushed("org", [(organization.pk, row.changed_at)])  # returns at once
        assert OutboxItem.objects.pending().filter(pk=row.pk).exists()
    finally:
        other.rollback()
        other.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")

    publisher._mark_pushed("org", [(organization.pk, row.changed_at)])
    assert not OutboxItem.objects.pending().filter(pk=row.pk).exists()


def test_outbox_rows_are_restamped_as_heap_only_tuples(organization):
    """No index covers the stamps (or the rows would leave dead index entries per change),
    and half of each page is left free for the new versions."""
    indexed = {
        column
        for constraint in connection.introspection.get_constraints(connection.cursor(), "core_outboxitem").values()
        if constraint["index"] or constraint["unique"]
        for column in constraint["columns"]
    }
    assert indexed == {"id", "topic", "object_id"}
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'core_outboxitem'")
        assert cursor.fetchone()[0] == ["fillfactor=50"]

    grant_credits(organization=organization, amount=10, reason="first")
    publisher.push_changes("org", [organization.pk])
    counts = """SELECT pg_stat_get_xact_tuples_updated('core_outboxitem'::regclass),
                       pg_stat_get_xact_tuples_hot_updated('core_outboxitem'::regclass)"""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(counts)
        updated_before, hot_before = cursor.fetchone()
        grant_credits(organization=organization, amount=5, reason="second")  # re-stamps the row
        cursor.execute(counts)
        updated_after, hot_after = cursor.fetchone()
    assert (updated_after - updated_before, hot_after - hot_before) == (1, 1)
