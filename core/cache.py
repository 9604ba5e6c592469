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
# django-redis raises the redis error behind its ConnectionInterrupted (unless told to ignore it).
_UNREACHABLE = (ConnectionInterrupted, redis.ConnectionError, redis.TimeoutError)


class RedisCacheWithFallback(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._fallback = LocMemCache(f"redis-fallback:{server}", {"TIMEOUT": params.get("TIMEOUT", 300)})
        self._down_until = 0.0
        self._lock = threading.Lock()

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if time.monotonic() >= self._down_until:
            try:
                return getattr(super(), name)(*args, **kwargs)
            except _UNREACHABLE as exc:
                with self._lock:
                    if time.monotonic() >= self._down_until:
                        logger.warning("cache: Redis unreachable (%s); using this process's memory for a while", exc)
                    self._down_until = time.monotonic() + RETRY_AFTER_SECONDS
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
