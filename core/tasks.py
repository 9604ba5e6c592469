"""Periodic tasks that keep Redis in line with PostgreSQL (scheduled in settings.CELERY_BEAT_SCHEDULE).

All are idempotent: a broker may deliver a task twice, and two runs may overlap.
"""

import logging
from typing import Any

from celery import shared_task

from core import publisher

logger = logging.getLogger(__name__)

BATCH = 5000


@shared_task(name="core.drain_outbox", ignore_result=True)
def drain_outbox() -> dict[str, Any]:
    """Write every hash again if Redis came back empty, then push outbox rows that the
    after-commit push did not clear (every 30 s)."""
    restored = publisher.restore_if_emptied()
    return {**publisher.drain_outbox(), "restored": restored}


@shared_task(name="core.expire_api_keys", ignore_result=True)
def expire_api_keys() -> dict[str, Any]:
    """Mark keys past `expires_at` as expired in PostgreSQL; their hashes follow after commit (every 30 s)."""
    from apikeys.services import expire_api_keys as expire

    expired = 0
    while True:
        ids = expire(limit=BATCH)
        expired += len(ids)
        if len(ids) < BATCH:
            break
    if expired:
        logger.info("expired %s API keys", expired)
    return {"expired": expired}


@shared_task(name="core.reconcile_redis", ignore_result=True)
def reconcile_redis() -> dict[str, int]:
    """Compare every hash with the database, repair and log each difference (hourly)."""
    return publisher.reconcile()
