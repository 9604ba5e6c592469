"""Signed invitation links: the invitation id signed with a timestamp (TimestampSigner).

A link expires INVITATION_MAX_AGE_DAYS after it was signed; a tampered one never
resolves. The pending invitation of an anonymous visitor waits in the session until
they sign up or log in.
"""

from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.http import HttpRequest
from django.urls import reverse

from accounts.errors import InvitationExpired, InvitationInvalid
from accounts.models import Invitation

SALT = "accounts.invitation"
SESSION_KEY = "accounts_pending_invitation"


def make_token(invitation: Invitation) -> str:
    return signing.TimestampSigner(salt=SALT).sign(str(invitation.pk))


def invitation_url(invitation: Invitation) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("accounts_invitation", args=[make_token(invitation)])


def load_invitation(token: str) -> Invitation:
    """The invitation a token names; InvitationInvalid when tampered, InvitationExpired when old."""
    signer = signing.TimestampSigner(salt=SALT)
    try:
        value = signer.unsign(token, max_age=timedelta(days=settings.INVITATION_MAX_AGE_DAYS))
    except signing.SignatureExpired as exc:
        raise InvitationExpired() from exc
    except signing.BadSignature as exc:
        raise InvitationInvalid() from exc
    invitation = Invitation.objects.select_related("organization").filter(pk=int(value)).first()
    if invitation is None:
        raise InvitationInvalid()
    return invitation


def remember_pending(request: HttpRequest, token: str) -> None:
    request.session[SESSION_KEY] = token


def pending_token(request: HttpRequest) -> str | None:
    session = getattr(request, "session", None)
    return session.get(SESSION_KEY) if session is not None else None


def forget_pending(request: HttpRequest) -> None:
    request.session.pop(SESSION_KEY, None)
