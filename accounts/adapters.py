"""allauth adapters: the extension points where sign-in meets organizations.

- A new user gets a personal organization, unless they sign up through an invitation
  link for their address: then they join the inviting organization.
- After log-in, a pending invitation (from a link opened while logged out) is shown.
- A refused log-in (rate limit reached) records a lock-out and emails the owner.
"""

from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse

from accounts import invitations
from accounts.errors import InvitationExpired, InvitationInvalid, InvitationNotForYou
from accounts.lockouts import client_ip, exhausted_limits
from accounts.models import Membership
from accounts.services import accept_invitation, check_invitation, create_personal_organization, record_lockout


def _join_or_create_organization(request, user) -> None:
    """The invitation in the session, if it is for this user's address; else a personal organization."""
    token = invitations.pending_token(request) if request is not None else None
    if token:
        try:
            invitation = check_invitation(invitation=invitations.load_invitation(token), user=user)
        except (InvitationInvalid, InvitationExpired, InvitationNotForYou):
            invitation = None
        if invitation is not None:
            accept_invitation(invitation=invitation, user=user)
            invitations.forget_pending(request)
            return
    create_personal_organization(user=user)


class AccountAdapter(DefaultAccountAdapter):
    error_messages = {
        **DefaultAccountAdapter.error_messages,
        "too_many_login_attempts": (
            "Too many failed log-in attempts: log-in is locked for a while. We have emailed the account's "
            "owner. Reset your password to unlock it now, or try again later."
        ),
    }

    def save_user(self, request, user, form, commit=True):
        with transaction.atomic():
            user = super().save_user(request, user, form, commit=commit)
            if commit and not Membership.objects.filter(user=user).exists():
                _join_or_create_organization(request, user)
        return user

    def pre_authenticate(self, request, **credentials):
        try:
            super().pre_authenticate(request, **credentials)
        except ValidationError:
            self._record_lockout(request, credentials)
            raise

    def _record_lockout(self, request, credentials) -> None:
        email = (credentials.get("email") or credentials.get("username") or "").lower()
        rate_key = self._get_login_attempts_cache_key(request, **credentials)
        ip_address = client_ip(request)
        for scope, seconds in exhausted_limits(rate_key=rate_key, ip_address=ip_address):
            record_lockout(
                email=email, scope=scope, rate_key=rate_key, ip_address=ip_address, locked_for_seconds=seconds
            )

    def get_login_redirect_url(self, request):
        token = invitations.pending_token(request)
        if token:
            return reverse("accounts_invitation", args=[token])
        return super().get_login_redirect_url(request)

    def get_signup_redirect_url(self, request):
        token = invitations.pending_token(request)
        if token:
            return reverse("accounts_invitation", args=[token])
        return super().get_signup_redirect_url(request)


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def save_user(self, request, sociallogin, form=None):
        with transaction.atomic():
            user = super().save_user(request, sociallogin, form=form)
            if not Membership.objects.filter(user=user).exists():
                _join_or_create_organization(request, user)
        return user
