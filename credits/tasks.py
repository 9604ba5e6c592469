from celery import shared_task

from credits import notifications


@shared_task(ignore_result=True)
def send_low_credit_alert(organization_id: int) -> None:
    """Email the organization's client admins that its balance fell below the threshold."""
    notifications.send_low_credit_alert(organization_id=organization_id)
