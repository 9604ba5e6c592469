"""The Redis connection used to publish the hashes the public query API reads.

It is not the Celery broker and not the Django cache (even where all three share a
server). On the embedded default (no REDIS_URL) publishing is off and `get_redis()`
returns None; tests swap in fakeredis through `set_redis_client`.
"""

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=1)
def _client_from_settings() -> redis.Redis | None:
    if not settings.REDIS_URL:
        return None
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=0.5,
        socket_timeout=1,
        health_check_interval=30,
        decode_responses=True,
    )


_override: list[redis.Redis | None] = []


def set_redis_client(client: redis.Redis | None) -> None:
    """Use `client` instead of the one from settings (tests); None restores settings."""
    _override.clear()
    if client is not None:
        _override.append(client)


def get_redis() -> redis.Redis | None:
    if _override:
        return _override[0]
    if not settings.REDIS_PUBLISH_ENABLED:
        return None
    return _client_from_settings()


def redis_key(*parts: object) -> str:
    """`<REDIS_KEY_PREFIX>:<part>:<part>`."""
    return ":".join([settings.REDIS_KEY_PREFIX, *(str(part) for part in parts)])
