"""The default cache: django-redis, with this process's memory standing in while Redis is down.

What the cache holds here (allauth's rate limits and their locks, DRF's throttles) may be lost
and rebuilt, but reading it must not fail: with plain django-redis a Redis outage made every
log-in, sign-up and password reset a 500, while the contract wants requests to succeed
against PostgreSQL. During an outage the limits count per process; once a call fails, Redis
is left alone for RETRY_AFTER_SECONDS so that each request does not wait on a dead socket.
"""

import logging
import threading
import time
from typing import Any

import redis
from django.core.cache.backends.locmem import LocMemCache
from django_redis.cache import RedisCache
from django_redis.exceptions import ConnectionInterrupted

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5.0
FALLBACK_MAX_ENTRIES = 100_000  # rate-limit counters: evicting them would lift the limits
# django-redis raises the redis error behind its ConnectionInterrupted (unless told to ignore it).
_UNREACHABLE = (ConnectionInterrupted, redis.ConnectionError, redis.TimeoutError)


class _Outage:
    """When the cache's Redis may be tried again; one per process and server (Django makes a
    cache instance per thread, and each thread should not wait on a dead socket in turn)."""

    def __init__(self) -> None:
        self.until = 0.0
        self.lock = threading.Lock()


_outages: dict[str, _Outage] = {}
_outages_lock = threading.Lock()


class RedisCacheWithFallback(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        # LocMemCache instances of one name share their store across threads.
        options = {"TIMEOUT": params.get("TIMEOUT", 300), "OPTIONS": {"MAX_ENTRIES": FALLBACK_MAX_ENTRIES}}
        self._fallback = LocMemCache(f"redis-fallback:{server}", options)
        with _outages_lock:
            self._outage = _outages.setdefault(server, _Outage())

    @property
    def _down_until(self) -> float:
        return self._outage.until

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        outage = self._outage
        if time.monotonic() >= outage.until:
            try:
                return getattr(super(), name)(*args, **kwargs)
            except _UNREACHABLE as exc:
                with outage.lock:
                    if time.monotonic() >= outage.until:
                        logger.warning("cache: Redis unreachable (%s); using this process's memory for a while", exc)
                    outage.until = time.monotonic() + RETRY_AFTER_SECONDS
        return getattr(self._fallback, name)(*args, **kwargs)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("get", *args, **kwargs)

    def set(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("set", *args, **kwargs)

    def add(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("add", *args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("delete", *args, **kwargs)

    def get_many(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("get_many", *args, **kwargs)

    def set_many(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("set_many", *args, **kwargs)

    def delete_many(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("delete_many", *args, **kwargs)

    def incr(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("incr", *args, **kwargs)

    def decr(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("decr", *args, **kwargs)

    def has_key(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("has_key", *args, **kwargs)

    def touch(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("touch", *args, **kwargs)

    def clear(self) -> Any:
        return self._call("clear")
