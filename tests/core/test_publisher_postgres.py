"""The after-commit push on PostgreSQL, outside any transaction, as it runs in production."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from core import publisher
from core.models import OutboxItem
from credits.services import grant_credits

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def stamped_row(organization) -> OutboxItem:
    """An outbox row as a posting leaves it (written directly: a committed grant would push at once)."""
    return OutboxItem.objects.create(topic="org", object_id=organization.pk, changed_at=timezone.now())


def test_a_push_outside_a_transaction_clears_the_outbox_row_and_publishes(organization, redis_client):
    grant_credits(organization=organization, amount=10, reason="top-up")
    assert not connection.in_atomic_block

    assert publisher.push_changes("org", [organization.pk])

    assert not OutboxItem.objects.filter(topic="org", object_id=organization.pk).exists()
    assert redis_client.hget(f"creditdesk:org:{organization.pk}", "balance") == "10"


def test_a_row_restamped_after_the_push_read_it_survives_the_clearing(organization, redis_client):
    row = stamped_row(organization)
    publisher._delete_outbox_rows("org", [(organization.pk, row.changed_at - timedelta(seconds=1))])
    assert OutboxItem.objects.filter(pk=row.pk).exists()

    publisher._delete_outbox_rows("org", [(organization.pk, row.changed_at)])
    assert not OutboxItem.objects.filter(pk=row.pk).exists()


def test_clearing_skips_a_row_another_transaction_holds_instead_of_waiting(organization):
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
        publisher._delete_outbox_rows("org", [(organization.pk, row.changed_at)])  # returns at once
        assert OutboxItem.objects.filter(pk=row.pk).exists()
    finally:
        other.rollback()
        other.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")

    publisher._delete_outbox_rows("org", [(organization.pk, row.changed_at)])
    assert not OutboxItem.objects.filter(pk=row.pk).exists()
