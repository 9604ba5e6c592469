from celery import shared_task

from billing import notifications


@shared_task(ignore_result=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_payment_confirmation(purchase_id: int) -> None:
    """Email the receipt of a completed purchase or subscription payment."""
    notifications.send_purchase_email(purchase_id=purchase_id, template="billing/payment_confirmation")


@shared_task(ignore_result=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_subscription_renewal(purchase_id: int) -> None:
    """Email that a subscription renewed and its monthly credits arrived."""
    notifications.send_purchase_email(purchase_id=purchase_id, template="billing/subscription_renewal")


@shared_task(ignore_result=True)
def expire_stale_billing() -> None:
    """Expire purchases never paid and delete long-expired open quotes (see billing.services)."""
    from billing import services

    services.expire_stale_billing()
