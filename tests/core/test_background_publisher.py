"""The background publisher of web server processes: many commits, one push, Redis within a second."""

import os
import threading
import time

import pytest

from core import publisher
from core.models import OutboxItem
from credits.services import grant_credits, spend_credits


@pytest.fixture
def pushes(monkeypatch):
    """Record the pushes instead of making them (no database or Redis needed)."""
    calls: list[tuple[str, set[int], str]] = []

    def record(topic, ids, **kwargs):
        calls.append((topic, set(ids), threading.current_thread().name))
        return True

    monkeypatch.setattr(publisher, "push_changes", record)
    return calls


def test_the_changes_of_many_commits_are_published_together_from_the_thread(pushes):
    background = publisher.BackgroundPublisher(linger=0.05)
    for org_id in range(1, 51):
        background.submit("org", [org_id])
    background.submit("key", [7])
    background.stop()

    assert {org_id for topic, ids, _ in pushes if topic == "org" for org_id in ids} == set(range(1, 51))
    assert len([call for call in pushes if call[0] == "org"]) <= 2  # not one push per commit
    assert ("key", {7}, "redis-publisher") in pushes


def test_a_failed_push_is_logged_and_later_changes_are_still_published(monkeypatch, caplog):
    calls = []

    def fail_once(topic, ids, **kwargs):
        calls.append(set(ids))
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return True

    monkeypatch.setattr(publisher, "push_changes", fail_once)
    background = publisher.BackgroundPublisher(linger=0.01)
    background.submit("org", [1])
    deadline = time.monotonic() + 2
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    background.submit("org", [2])
    background.stop()

    assert calls == [{1}, {2}]
    assert "background publish of org [1] failed" in caplog.text


def test_pending_changes_are_pushed_at_exit(pushes, monkeypatch, db):
    registered = []
    monkeypatch.setattr(publisher.atexit, "register", registered.append)
    background = publisher.BackgroundPublisher(linger=60)  # the thread would wait a minute
    background.submit("org", [3, 4])

    assert registered == [background.flush]
    background.flush()  # what the interpreter runs at exit
    assert pushes == [("org", {3, 4}, threading.current_thread().name)]
    background.stop()


def test_a_forked_worker_starts_with_no_thread_and_nothing_pending(pushes):
    background = publisher.BackgroundPublisher(linger=60)
    background.submit("org", [5])
    pid = os.fork()
    if pid == 0:  # the child: a gunicorn worker forked from a process that already published
        os._exit(0 if background._thread is None and background._pending == {} else 1)
    _, status = os.waitpid(pid, 0)
    background.stop()
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.fixture
def web_process(redis_client):
    """Publish as a web server process does (config.wsgi)."""
    publisher.publish_in_background(0.01)
    yield publisher._background
    publisher._background.stop()
    publisher.publish_in_background(0)


def wait_for(condition, seconds=1.0):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.mark.django_db(transaction=True)
def test_in_a_web_process_redis_shows_a_committed_change_within_a_second(organization, redis_client, web_process):
    grant_credits(organization=organization, amount=50, reason="top-up")
    spend_credits(organization=organization, amount=8, reason="usage")

    def published():
        return redis_client.hget(f"creditdesk:org:{organization.pk}", "balance") == "42"

    assert wait_for(published), redis_client.hgetall(f"creditdesk:org:{organization.pk}")
    assert wait_for(lambda: not OutboxItem.objects.pending().filter(topic="org", object_id=organization.pk).exists())
