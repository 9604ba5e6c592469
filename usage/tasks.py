from celery import shared_task

from usage import services


@shared_task(ignore_result=True)
def purge_idempotency_keys() -> int:
    """Release idempotency keys older than seven days (scheduled in CELERY_BEAT_SCHEDULE)."""
    return services.purge_idempotency_keys()
