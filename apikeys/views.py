"""Portal pages: the organization's API keys; create (the full key shown once) and revoke."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from accounts.scoping import get_request_membership
from apikeys.forms import ApiKeyCreateForm
from apikeys.selectors import can_manage_api_key, get_api_key_for_request, list_api_keys_for_request
from apikeys.services import count_active_keys, issue_api_key, revoke_api_key
from core.errors import ApplicationError


@login_required
def api_key_list(request: HttpRequest) -> HttpResponse:
    api_keys = list(list_api_keys_for_request(request))
    membership = get_request_membership(request)
    now = timezone.now()
    rows = [
        {"key": key, "status": key.effective_status(now), "can_manage": can_manage_api_key(request, key)}
        for key in api_keys
    ]
    plan = membership.organization.plan
    return render(
        request,
        "apikeys/list.html",
        {
            "rows": rows,
            "organization": membership.organization,
            "is_client_admin": membership.is_client_admin,
            "limit": plan.max_api_keys,
            "active_count": count_active_keys(organization=membership.organization, now=now),
        },
    )


@never_cache
@login_required
def api_key_create(request: HttpRequest) -> HttpResponse:
    api_keys = list_api_keys_for_request(request)  # 404 without an organization
    membership = get_request_membership(request)
    form = ApiKeyCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            api_key, raw_key = issue_api_key(
                organization=membership.organization,
                created_by=request.user,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"] or None,
                expires_at=form.cleaned_data["expires_at"],
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            # Rendered, never redirected: the key must not pass through the session or messages.
            response = render(request, "apikeys/created.html", {"api_key": api_key, "raw_key": raw_key})
            response["Cache-Control"] = "no-store"
            return response
    return render(request, "apikeys/create.html", {"form": form, "has_keys": api_keys.exists()})


@login_required
def api_key_revoke(request: HttpRequest, api_key_id: int) -> HttpResponse:
    api_key = get_api_key_for_request(request, api_key_id)
    if not can_manage_api_key(request, api_key):
        raise PermissionDenied("Members manage the keys they created; client admins manage all.")
    if request.method == "POST":
        revoke_api_key(api_key=api_key, actor=request.user)
        messages.success(request, f"The key “{api_key.name}” ({api_key.prefix}…) is revoked.")
        return redirect("apikeys:list")
    return render(request, "apikeys/revoke_confirm.html", {"api_key": api_key})
