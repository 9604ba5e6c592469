from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest, HttpResponse

# Columns that hold secrets, by model: no admin list filters or searches on them. Django's
# admin accepts a filter on any of a model's own columns from the address, whatever the
# admin declares (?data__icontains=...), and its "1 result" / "0 results" answers a guess:
# found from outside, a business admin rebuilt a customer's TOTP secret from the
# authenticator list in 537 requests. The user admin already refused ?password__...
SECRET_FIELDS: dict[str, set[str]] = {
    "mfa.authenticator": {"data"},
    "usersessions.usersession": {"session_key", "data"},
    "socialaccount.socialapp": {"secret", "key"},
    "socialaccount.socialtoken": {"token", "token_secret"},
    "djstripe.apikey": {"secret"},
    "djstripe.webhookendpoint": {"secret"},
    "accounts.user": {"password"},
    "apikeys.serviceaccount": {"password"},
}


def harden_admins(site: admin.AdminSite = admin.site) -> None:
    """Run once every admin is registered (core's ready(), after the admin's autodiscovery),
    on the project's admins and the libraries' alike."""
    refuse_lookups_on_secrets(site)
    check_action_selections(site)


def refuse_lookups_on_secrets(site: admin.AdminSite) -> None:
    """A filter on a secret column is refused (400, as Django refuses any disallowed lookup)."""
    for model, model_admin in site._registry.items():
        secret = SECRET_FIELDS.get(model._meta.label_lower)
        if secret:
            model_admin.lookup_allowed = _refusing(model_admin.lookup_allowed, secret)
            model_admin.search_fields = [
                field for field in model_admin.search_fields if field.lstrip("^=@").split(LOOKUP_SEP)[0] not in secret
            ]


def _refusing(lookup_allowed: Callable[..., bool], secret: set[str]) -> Callable[..., bool]:
    def allowed(lookup: str, value: Any, request: HttpRequest | None = None) -> bool:
        return lookup.split(LOOKUP_SEP)[0] not in secret and lookup_allowed(lookup, value, request)

    return allowed


class ReadOnlyMixin:
    """Rows that only services write (the ledger, purchases, memberships...): staff look, never
    add, change or delete here. For model admins and inlines alike."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    pass


def check_action_selections(site: admin.AdminSite) -> None:
    """An action on rows whose ids are not ids of that model is refused with a message, and
    does nothing: Django filtered on them as given, and `_selected_action=abc` (or an id past
    the column's range) was a 500, found from outside."""
    for model, model_admin in site._registry.items():
        model_admin.response_action = _checking_selection(model_admin, model._meta.pk)


def _checking_selection(model_admin: admin.ModelAdmin, pk: Any) -> Callable[..., HttpResponse | None]:
    response_action = model_admin.response_action

    def checked(request: HttpRequest, queryset: Any) -> HttpResponse | None:
        for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
            try:
                pk.clean(value, None)
            except ValidationError:
                model_admin.message_user(
                    request, "The selection was not valid: no items have been changed.", messages.WARNING
                )
                return None
        return response_action(request, queryset)

    return checked
