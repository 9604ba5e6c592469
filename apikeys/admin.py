"""Staff views of API keys (read-only, revoke action) and service accounts (create, rotate, revoke tokens).

A full API key never reaches the admin: only its name, visible prefix and facts. A new
service token is shown once, on the page that answers the action that made it.
"""

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from rest_framework.authtoken.models import TokenProxy

from accounts.models import User
from apikeys.models import ApiKey, ServiceAccount
from apikeys.services import (
    create_service_account,
    revoke_api_key,
    revoke_service_token,
    rotate_service_token,
    service_email,
)

# Service tokens are managed on the service accounts below, not as bare tokens of any user.
if admin.site.is_registered(TokenProxy):
    admin.site.unregister(TokenProxy)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "organization", "created_by", "status", "scopes", "created_at", "last_used_at"]
    list_filter = ["status"]
    search_fields = ["name", "prefix", "organization__name", "organization__slug", "created_by__email"]
    list_select_related = ["organization", "created_by"]
    fields = [
        "name",
        "prefix",
        "organization",
        "created_by",
        "scopes",
        "status",
        "expires_at",
        "created_at",
        "last_used_at",
        "revoked_at",
        "revoked_by",
    ]
    readonly_fields = fields
    actions = ["revoke_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are issued by their organization (portal or create_api_key)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # revoke instead: the Redis hash and the audit trail stay consistent

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.action(description="Revoke selected API keys", permissions=["revoke"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = 0
        for api_key in queryset.exclude(status=ApiKey.Status.REVOKED).order_by("pk"):
            revoke_api_key(api_key=api_key, actor=request.user)
            count += 1
        self.message_user(request, f"Revoked {count} API key(s).", messages.SUCCESS)

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("apikeys.change_apikey")


class ServiceAccountCreationForm(forms.ModelForm):
    name = forms.RegexField(
        regex=r"^[a-z0-9][a-z0-9._-]{0,63}$",
        max_length=64,
        help_text="1 to 64 characters of a-z, 0-9, '.', '_' and '-' (email: <name>@service.creditdesk.invalid).",
    )

    class Meta:
        model = ServiceAccount
        fields: list[str] = []

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if User.objects.filter(email__iexact=service_email(name)).exists():
            raise forms.ValidationError("A service account with this name already exists.")
        return name


@admin.register(ServiceAccount)
class ServiceAccountAdmin(admin.ModelAdmin):
    list_display = ["email", "is_active", "has_token", "token_created", "date_joined"]
    list_filter = ["is_active"]
    search_fields = ["email"]
    fields = ["email", "full_name", "is_active", "date_joined", "token_created"]
    readonly_fields = ["email", "full_name", "date_joined", "token_created"]
    actions = ["rotate_tokens", "revoke_tokens"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("auth_token")

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ServiceAccountCreationForm
            kwargs["fields"] = ["name"]
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj=None):
        return ["name"] if obj is None else self.fields

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return [] if obj is None else self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # deactivate or revoke the token: the audit trail keeps the account

    @admin.display(boolean=True, description="Token")
    def has_token(self, obj: ServiceAccount) -> bool:
        return hasattr(obj, "auth_token")

    @admin.display(description="Token created")
    def token_created(self, obj: ServiceAccount):
        token = getattr(obj, "auth_token", None)
        return token.created if token else "-"

    def save_model(self, request: HttpRequest, obj, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        user, token = create_service_account(name=form.cleaned_data["name"], actor=request.user)
        obj.pk = user.pk
        obj.email = user.email
        obj._new_token = token

    def response_add(self, request: HttpRequest, obj, post_url_continue=None):
        return self._show_tokens(request, [(obj.email, obj._new_token)])

    @admin.action(description="Issue a new token (the old one stops working)")
    def rotate_tokens(self, request: HttpRequest, queryset: QuerySet[ServiceAccount]):
        tokens = [(user.email, rotate_service_token(user=user, actor=request.user)) for user in queryset.order_by("pk")]
        return self._show_tokens(request, tokens)

    @admin.action(description="Revoke tokens (the accounts can no longer authenticate)")
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ServiceAccount]) -> None:
        revoked = sum(revoke_service_token(user=user, actor=request.user) for user in queryset.order_by("pk"))
        self.message_user(request, f"Revoked {revoked} token(s).", messages.SUCCESS)

    def _show_tokens(self, request: HttpRequest, tokens: list[tuple[str, str]]) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Service token",
            "tokens": tokens,
        }
        return TemplateResponse(request, "admin/apikeys/serviceaccount/tokens.html", context)
