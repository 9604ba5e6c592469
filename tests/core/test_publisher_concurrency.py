"""Concurrent writers never leave an older version in Redis (real threads, real Redis)."""

import random
import threading

import pytest
from django.db import connection

from core import publisher
from core.models import OutboxItem
from credits.models import Account
from credits.services import grant_credits, spend_credits


def run_threads(count: int, target) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def wrapped(index: int) -> None:
        try:
            barrier.wait()
            target(index)
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrapped, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.redis
def test_racing_org_writes_in_any_order_leave_the_highest_version(redis_client):
    versions = list(range(1, 801))
    random.Random(4).shuffle(versions)
    slices = [versions[index::8] for index in range(8)]

    def writer(index: int) -> None:
        for version in slices[index]:
            # balance = 10 x version, so a mixed hash (one write's balance, another's version) shows.
            publisher.write_hashes(redis_client, "org", [(7, version * 10, "active", version, None, "free")])

    assert run_threads(8, writer) == []
    published = redis_client.hgetall("creditdesk:org:7")
    assert published["version"] == "800"
    assert published["balance"] == "8000"


@pytest.mark.redis
def test_racing_key_writes_never_bring_a_revoked_key_back(redis_client):
    row = (1, "f" * 64, 2, 3, "active", ["query"], None)
    revoked = (*row[:4], "revoked", *row[5:])

    def writer(index: int) -> None:
        for attempt in range(200):
            publisher.write_hashes(redis_client, "key", [revoked if (index, attempt) == (3, 50) else row])

    assert run_threads(6, writer) == []
    assert redis_client.hget("creditdesk:key:" + "f" * 64, "status") == "revoked"


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_concurrent_spends_leave_redis_at_the_databases_last_version(organization, redis_client):
    grant_credits(organization=organization, amount=1000, reason="start")

    def spender(index: int) -> None:
        for _ in range(10):
            spend_credits(organization=organization, amount=1, reason=f"thread {index}")

    assert run_threads(8, spender) == []

    wallet = Account.objects.get(organization=organization)
    published = redis_client.hgetall(f"creditdesk:org:{organization.pk}")
    assert wallet.balance == 920
    assert published["balance"] == "920"
    assert published["version"] == str(wallet.version)
    assert not OutboxItem.objects.pending().filter(topic="org", object_id=organization.pk).exists()
