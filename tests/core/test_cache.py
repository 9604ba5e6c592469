"""The default cache keeps answering while Redis is down (core.cache.RedisCacheWithFallback).

Found from outside: with the cache's Redis unreachable, every log-in, sign-up and password
reset was a 500 (allauth's rate limits read the cache).
"""

import logging

import pytest
from django.core.cache import cache
from django_redis.cache import RedisCache

from core import cache as cache_module
from tests.accounts.helpers import log_in

pytestmark = pytest.mark.django_db

UNREACHABLE = {
    "default": {
        "BACKEND": "core.cache.RedisCacheWithFallback",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
    }
}


@pytest.fixture
def redis_down(settings):
    settings.CACHES = UNREACHABLE


def test_with_redis_down_the_cache_answers_from_memory(redis_down, caplog):
    with caplog.at_level(logging.WARNING, logger="core.cache"):
        assert cache.add("lock", True, timeout=10) is True
        assert cache.add("lock", True, timeout=10) is False
        cache.set("history", [1, 2], 60)
        assert cache.get("history") == [1, 2]
        cache.add("count", 0)
        assert cache.incr("count") == 1
        cache.delete("lock")
        assert cache.get("lock") is None

    assert caplog.text.count("Redis unreachable") == 1  # then Redis is left alone for a while


def test_after_a_pause_it_tries_redis_again(redis_down, monkeypatch):
    cache.get("x")  # fails over to memory and leaves Redis alone for a while
    tried = []
    real_get = RedisCache.get
    monkeypatch.setattr(RedisCache, "get", lambda self, *args, **kwargs: tried.append(args) or real_get(self, *args))

    cache.get("x")
    assert tried == []
    monkeypatch.setattr(cache_module.time, "monotonic", lambda: cache._down_until + 1)
    cache.get("x")
    assert tried == [("x",)]


def test_logging_in_works_with_the_cache_down(redis_down, client, owner):
    response = log_in(client, "owner@acme.test")

    assert response.status_code == 302
    assert client.get("/dashboard/").status_code == 200


def test_the_pause_is_the_processs_not_each_threads(redis_down):
    """Found in review: Django makes a cache instance per thread, and each paid its own
    connect timeout to the dead Redis."""
    import threading

    cache.get("x")
    seen = []
    thread = threading.Thread(target=lambda: seen.append(cache._down_until))
    thread.start()
    thread.join()

    assert seen == [cache._down_until] and seen[0] > 0
