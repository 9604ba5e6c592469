"""Side effects after commit: Celery tasks, emails and Redis writes are registered here.

Like Zulip's queue_event_on_commit: callbacks run only if the surrounding transaction
commits, `robust=True` so one failing callback never stops the others, and callers pass
ids, never model instances. What must survive a crash between commit and callback also
writes an outbox row in the same transaction (see core.outbox).
"""

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)


def on_commit(func: Callable[[], Any], *, using: str | None = None) -> None:
    """Run `func` after the current transaction commits (at once outside a transaction)."""
    transaction.on_commit(func, using=using, robust=True)


def delay_on_commit(task: Any, *args: Any, **kwargs: Any) -> None:
    """Queue a Celery task after commit. Arguments must be ids and plain values."""

    def send() -> None:
        name = getattr(task, "name", task)
        try:
            task.delay(*args, **kwargs)
        except OperationalError:
            # The broker is down. Nothing would ever send these emails later (no sweep looks
            # for them), so the task runs here, one attempt and no retries, rather than being lost.
            logger.exception("could not queue %s: running it in this process", name)
            try:
                task.run(*args, **kwargs)
            except Exception:
                logger.exception("%s failed in this process too", name)
        except Exception:
            logger.exception("could not queue %s", name)

    on_commit(send)
