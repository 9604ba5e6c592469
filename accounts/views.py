from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled
from allauth.socialaccount.adapter import get_adapter as get_social_adapter
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts import invitations
from accounts.errors import MoveNeedsConfirmation
from accounts.forms import InviteForm, LowCreditAlertForm, MfaRequirementForm, RoleForm
from accounts.models import Invitation, Membership
from accounts.scoping import get_object_for_request, get_request_membership, get_request_organization
from accounts.selectors import get_membership, list_members, list_pending_invitations
from accounts.services import (
    accept_invitation,
    change_member_role,
    check_invitation,
    invite_member,
    remove_member,
    revoke_invitation,
    set_mfa_requirement,
)
from core.errors import ApplicationError
from credits.selectors import get_wallet
from credits.services import set_wallet


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("dashboard")
    return redirect("account_login")


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    membership = get_membership(user=request.user)
    context: dict = {"membership": membership}
    if membership is not None:
        context["organization"] = membership.organization
        context["wallet"] = get_wallet(organization=membership.organization)
    return render(request, "accounts/dashboard.html", context)


# --- Team ------------------------------------------------------------------------------


@login_required
def team(request: HttpRequest) -> HttpResponse:
    organization = get_request_organization(request)
    membership = get_request_membership(request)
    members = list(list_members(organization=organization))
    with_mfa = set(
        Authenticator.objects.filter(user__in=[m.user_id for m in members])
        .exclude(type=Authenticator.Type.RECOVERY_CODES)
        .values_list("user_id", flat=True)
    )
    for member in members:
        member.has_mfa = member.user_id in with_mfa
    can_manage = request.user.is_staff or (membership is not None and membership.is_client_admin)
    return render(
        request,
        "accounts/team.html",
        {
            "organization": organization,
            "members": members,
            "invitations": list_pending_invitations(organization=organization) if can_manage else [],
            "can_manage": can_manage,
            "invite_form": InviteForm(),
            "roles": Membership.Role.choices,
        },
    )


@login_required
@require_POST
def team_invite(request: HttpRequest) -> HttpResponse:
    organization = get_request_organization(request)
    form = InviteForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Enter a valid email address and role.")
        return redirect("accounts_team")
    try:
        invitation = invite_member(
            organization=organization,
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
            invited_by=request.user,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Invitation sent to {invitation.email}.")
    return redirect("accounts_team")


@login_required
@require_POST
def team_member_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = get_object_for_request(request, Membership.objects.select_related("user"), pk=membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a valid role.")
        return redirect("accounts_team")
    try:
        membership = change_member_role(membership=membership, role=form.cleaned_data["role"], actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{membership.user.email} is now {membership.get_role_display().lower()}.")
    return redirect("accounts_team")


@login_required
@require_POST
def team_member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = get_object_for_request(request, Membership.objects.select_related("user"), pk=membership_id)
    email = membership.user.email
    try:
        remove_member(membership=membership, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"{email} was removed from the organization, and the API keys they created are revoked."
        )
        if membership.user_id == request.user.pk:
            return redirect("dashboard")
    return redirect("accounts_team")


@login_required
@require_POST
def team_invitation_revoke(request: HttpRequest, invitation_id: int) -> HttpResponse:
    invitation = get_object_for_request(request, Invitation.objects.pending(), pk=invitation_id)
    try:
        revoke_invitation(invitation=invitation, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"The invitation to {invitation.email} was withdrawn.")
    return redirect("accounts_team")


@login_required
@require_POST
def team_mfa_requirement(request: HttpRequest) -> HttpResponse:
    organization = get_request_organization(request)
    form = MfaRequirementForm(request.POST)
    form.is_valid()
    required = form.cleaned_data.get("require_mfa", False)
    try:
        set_mfa_requirement(organization=organization, required=required, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            "Members must now use two-factor authentication."
            if required
            else "Two-factor authentication is no longer required.",
        )
    return redirect("accounts_team")


# --- Account settings -----------------------------------------------------------------


@login_required
def account_settings(request: HttpRequest) -> HttpResponse:
    from allauth.account.models import EmailAddress
    from allauth.socialaccount.models import SocialAccount

    return render(
        request,
        "accounts/settings.html",
        {
            "membership": get_request_membership(request),
            "emails": EmailAddress.objects.filter(user=request.user).order_by("-primary", "email"),
            "mfa_enabled": is_mfa_enabled(request.user),
            "social_accounts": SocialAccount.objects.filter(user=request.user).count(),
            "social_providers": [provider.name for provider in get_social_adapter().list_providers(request)],
        },
    )


# --- Organization settings ------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def organization_settings(request: HttpRequest) -> HttpResponse:
    """The organization's settings: every member sees them; only a client admin changes them."""
    organization = get_request_organization(request)
    membership = get_request_membership(request)
    can_manage = membership is not None and membership.is_client_admin
    wallet = get_wallet(organization=organization)
    form = LowCreditAlertForm(initial={"low_credit_threshold": wallet.low_credit_threshold})
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied("Only a client admin can change the organization's settings.")
        form = LowCreditAlertForm(request.POST)
        if form.is_valid():
            try:
                wallet = set_wallet(
                    organization=organization,
                    low_credit_threshold=form.cleaned_data["low_credit_threshold"],
                    actor=request.user,
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                if wallet.low_credit_threshold is None:
                    messages.success(request, "Low-credit alerts are off.")
                else:
                    messages.success(
                        request,
                        f"Low-credit alert set: client admins get an email when the balance falls below "
                        f"{wallet.low_credit_threshold:,} credits.",
                    )
                return redirect("accounts_organization_settings")
    return render(
        request,
        "accounts/organization_settings.html",
        {
            "organization": organization,
            "membership": membership,
            "wallet": wallet,
            "can_manage": can_manage,
            "low_credit_alert_form": form,
        },
    )


# --- Invitations ----------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """Open an invitation link: logged out, it waits in the session for log-in or sign-up;
    logged in with the invited address, confirm to join (and to move, from another organization)."""
    try:
        invitation = invitations.load_invitation(token)
        check_invitation(invitation=invitation)
    except ApplicationError as exc:
        if invitations.pending_token(request) == token:
            invitations.forget_pending(request)
        return render(request, "accounts/invitation_invalid.html", {"error": exc}, status=exc.status_code)

    if not request.user.is_authenticated:
        invitations.remember_pending(request, token)
        return render(request, "accounts/invitation.html", {"invitation": invitation, "anonymous": True})

    try:
        check_invitation(invitation=invitation, user=request.user)
    except ApplicationError as exc:
        return render(request, "accounts/invitation_invalid.html", {"error": exc}, status=exc.status_code)

    current = get_membership(user=request.user)
    if request.method == "POST":
        try:
            accept_invitation(invitation=invitation, user=request.user, confirm_move=request.POST.get("confirm") == "1")
        except MoveNeedsConfirmation:
            messages.warning(request, "Confirm that you want to leave your current organization.")
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            invitations.forget_pending(request)
            messages.success(request, f"Welcome to the {invitation.organization.name} team.")
            return redirect("dashboard")
    return render(
        request,
        "accounts/invitation.html",
        {
            "invitation": invitation,
            "current": current,
            "moving": current is not None and current.organization_id != invitation.organization_id,
            "token": token,
        },
    )
