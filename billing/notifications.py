"""Billing emails: a receipt when a payment completes, a note when a subscription renews.

Each purchase's email is claimed once (`receipt_emailed_at`, set by a conditional UPDATE),
so a task delivered twice sends once; if sending fails the claim is released and the
error propagates, so the task retries.
"""

from django.conf import settings
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from billing.models import Purchase
from core.emails import send_templated_email


def _recipients(purchase: Purchase) -> list[str]:
    admins = Membership.objects.filter(organization_id=purchase.organization_id).filter(
        Q(role=Membership.Role.CLIENT_ADMIN) | Q(user_id=purchase.created_by_id)
    )
    return sorted(set(admins.values_list("user__email", flat=True)))


def send_purchase_email(*, purchase_id: int, template: str) -> bool:
    claimed = Purchase.objects.filter(
        pk=purchase_id, completed_at__isnull=False, receipt_emailed_at__isnull=True
    ).update(receipt_emailed_at=timezone.now())
    if not claimed:
        return False
    purchase = Purchase.objects.select_related("organization", "plan", "quote").get(pk=purchase_id)
    recipients = _recipients(purchase)
    if not recipients:
        return False
    context = {
        "purchase": purchase,
        "organization": purchase.organization,
        "receipt_url": settings.SITE_URL.rstrip("/") + reverse("billing:receipt", args=[purchase.pk]),
    }
    try:
        send_templated_email(template, to=recipients, context=context)
    except Exception:
        Purchase.objects.filter(pk=purchase_id).update(receipt_emailed_at=None)
        raise
    return True
