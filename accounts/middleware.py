"""Sends users who must have two-factor authentication, and do not, to set it up.

Who must: members of an organization whose client admins require it
(Organization.require_mfa), and staff on the admin when settings.ADMIN_REQUIRE_MFA
(production). allauth's own pages (/accounts/: MFA set-up, log-out, email, password),
static files and health checks stay reachable; under /api/ a session gets a 403
envelope instead of a redirect.
"""

from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect

from accounts.scoping import get_request_membership
from core.api import error_response

EXEMPT_PREFIXES = ("/accounts/", "/static/", "/health", "/ready", "/invitations/", "/stripe/")


def mfa_required_for(request: HttpRequest) -> bool:
    user = request.user
    if request.path.startswith("/admin/"):
        return bool(user.is_staff and settings.ADMIN_REQUIRE_MFA)
    membership = get_request_membership(request)
    return bool(membership is not None and membership.organization.require_mfa)


class MfaRequiredMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and not request.path.startswith(EXEMPT_PREFIXES)
            and mfa_required_for(request)
            and not is_mfa_enabled(user)
        ):
            if request.path.startswith("/api/"):
                return error_response(
                    "mfa_required", "Set up two-factor authentication in the portal to continue.", 403
                )
            messages.warning(
                request,
                "Two-factor authentication is required for your account: set up an authenticator app or a "
                "security key to continue.",
            )
            return redirect("mfa_index")
        return self.get_response(request)


class UnconfiguredProviderMiddleware:
    """A social provider without an app (no client id/secret, no SocialApp) is "not found",
    not a server error: allauth raises SocialApp.DoesNotExist from its log-in URLs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        from allauth.socialaccount.models import SocialApp

        if isinstance(exception, SocialApp.DoesNotExist):
            raise Http404("This log-in provider is not configured.") from exception
        return None
