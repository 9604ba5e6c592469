"""The low-credit email: claimed once per crossing (LowCreditAlert), sent after the claim commits."""

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import NoReverseMatch, reverse

from accounts.models import Membership
from core.emails import send_templated_email
from credits.models import Account, LowCreditAlert


def _portal_url(site_url: str, name: str) -> str:
    try:
        return site_url.rstrip("/") + reverse(name)
    except NoReverseMatch:
        return site_url


def send_low_credit_alert(*, organization_id: int, version: int | None = None) -> int:
    """Email the organization's client admins that the wallet fell below its threshold; returns how many.

    `version` is the wallet version of the posting that crossed the threshold: the alert
    for one crossing is claimed by inserting its LowCreditAlert row, so a task delivered
    twice sends once. Nothing is sent when the threshold is gone or the balance is back
    at or above it by the time the task runs. If sending fails the claim is released and
    the error propagates (the task retries).
    """
    wallet = Account.objects.select_related("organization").filter(organization_id=organization_id).first()
    if wallet is None or wallet.low_credit_threshold is None or wallet.balance >= wallet.low_credit_threshold:
        return 0
    try:
        with transaction.atomic():
            alert = LowCreditAlert.objects.create(
                account=wallet,
                version=wallet.version if version is None else version,
                balance=wallet.balance,
                threshold=wallet.low_credit_threshold,
            )
    except IntegrityError:
        return 0
    recipients = sorted(
        Membership.objects.filter(organization_id=organization_id, role=Membership.Role.CLIENT_ADMIN).values_list(
            "user__email", flat=True
        )
    )
    context = {
        "organization": wallet.organization,
        "balance": wallet.balance,
        "threshold": wallet.low_credit_threshold,
        "buy_url": _portal_url(settings.SITE_URL, "billing:buy"),
        "settings_url": _portal_url(settings.SITE_URL, "accounts_organization_settings"),
    }
    try:
        for email in recipients:
            send_templated_email("credits/low_credit", to=[email], context=context)
    except Exception:
        LowCreditAlert.objects.filter(pk=alert.pk).delete()
        raise
    LowCreditAlert.objects.filter(pk=alert.pk).update(recipients=len(recipients))
    return len(recipients)
