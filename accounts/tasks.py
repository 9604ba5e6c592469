"""Emails of the accounts app, queued after commit (core.effects.delay_on_commit) with ids.

Tasks load by id and skip what no longer applies, so a second delivery is harmless.
"""

from celery import shared_task
from django.conf import settings
from django.urls import reverse

from accounts.invitations import invitation_url
from accounts.models import Invitation, LoginLockout, User
from core.emails import send_templated_email


@shared_task(ignore_result=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_invitation_email(invitation_id: int) -> None:
    invitation = Invitation.objects.select_related("organization", "invited_by").filter(pk=invitation_id).first()
    if invitation is None or not invitation.is_pending:
        return
    send_templated_email(
        "accounts/invitation",
        to=[invitation.email],
        context={
            "invitation": invitation,
            "organization": invitation.organization,
            "inviter": invitation.invited_by,
            "accept_url": invitation_url(invitation),
            "max_age_days": settings.INVITATION_MAX_AGE_DAYS,
        },
    )


@shared_task(ignore_result=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_lockout_email(lockout_id: int) -> None:
    lockout = LoginLockout.objects.select_related("user").filter(pk=lockout_id).first()
    if lockout is None or lockout.user is None or lockout.cleared_at is not None:
        return
    send_templated_email(
        "accounts/lockout",
        to=[lockout.user.email],
        context={
            "lockout": lockout,
            "reset_url": settings.SITE_URL.rstrip("/") + reverse("account_reset_password"),
        },
    )


@shared_task(ignore_result=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_authenticator_removed_email(user_id: int) -> None:
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return
    send_templated_email(
        "accounts/authenticator_removed",
        to=[user.email],
        context={"user": user, "security_url": settings.SITE_URL.rstrip("/") + reverse("mfa_index")},
    )
