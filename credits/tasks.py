from celery import shared_task

from credits import notifications


@shared_task(
    ignore_result=True,
    autoretry_for=(OSError,),  # SMTP errors, and the HTTP email APIs' (anymail's are OSErrors too)
    retry_backoff=True,
    max_retries=5,
)
def send_low_credit_alert(organization_id: int, version: int | None = None) -> int:
    """Email the organization's client admins that its balance fell below the threshold (once per crossing)."""
    return notifications.send_low_credit_alert(organization_id=organization_id, version=version)
