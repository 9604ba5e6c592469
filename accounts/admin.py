from functools import wraps

from allauth.account.decorators import secure_admin_login
from allauth.mfa.models import Authenticator
from allauth.socialaccount.admin import SocialAppAdmin as AllauthSocialAppAdmin
from allauth.socialaccount.models import SocialApp, SocialToken
from allauth.usersessions.admin import UserSessionAdmin as AllauthUserSessionAdmin
from allauth.usersessions.models import UserSession
from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from accounts.models import Invitation, LoginLockout, Membership, Organization, User
from accounts.services import clear_lockout, create_organization, remove_authenticator, revoke_invitation
from apikeys.services import revoke_keys_of_departing_member
from core.admin import ReadOnlyAdmin, ReadOnlyMixin

STAFF_ONLY = "The admin is for Creditdesk staff only. Your organization's pages are in the portal."


def staff_only_admin_login(login_view):
    """The admin log-in goes through allauth: same rate limits, lock-outs and MFA as the
    portal. A logged-in customer is refused with a reason of its own (the portal's 403 page
    otherwise talks about their role in the organization)."""
    secured = secure_admin_login(login_view)

    @wraps(login_view)
    def view(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.user.is_authenticated and not (request.user.is_staff and request.user.is_active):
            raise PermissionDenied(STAFF_ONLY)
        return secured(request, *args, **kwargs)

    return view


admin.site.login = staff_only_admin_login(admin.site.login)
admin.site.site_header = "Creditdesk administration"


# allauth's admin searches user__username, which this project's User does not have.
admin.site.unregister(UserSession)


@admin.register(UserSession)
class UserSessionAdmin(AllauthUserSessionAdmin):
    search_fields = ["user__email", "ip"]


# allauth's admin showed every TOTP secret and recovery-code seed (`data`) and let them be edited.
admin.site.unregister(Authenticator)


@admin.register(Authenticator)
class AuthenticatorAdmin(admin.ModelAdmin):
    """Users' second factors, never their secrets. Deleting one (a customer's lost device)
    goes through accounts.services.remove_authenticator: audited, the user told by email.
    A staff member's factors only a superuser removes, as with their passwords."""

    list_display = ["user", "type", "created_at", "last_used_at"]
    list_filter = ["type"]
    search_fields = ["user__email"]
    fields = ["user", "type", "created_at", "last_used_at"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("user")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Authenticator | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Authenticator | None = None) -> bool:
        if obj is not None and (obj.user.is_staff or obj.user.is_superuser) and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: Authenticator) -> None:
        remove_authenticator(authenticator=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for authenticator in queryset:
            remove_authenticator(authenticator=authenticator, actor=request.user)


# Users' OAuth tokens (allauth listed their first 40 characters) are no staff member's business;
# cutting a user's social log-in is deleting their social account.
admin.site.unregister(SocialToken)
admin.site.unregister(SocialApp)


@admin.register(SocialApp)
class SocialAppAdmin(AllauthSocialAppAdmin):
    """OAuth apps with their client secrets: superusers only (business admins could read
    every provider's secret, found from outside; providers configured in the environment
    are not here at all)."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: SocialApp | None = None) -> bool:
        return self.has_module_permission(request)

    has_add_permission = has_module_permission

    def has_change_permission(self, request: HttpRequest, obj: SocialApp | None = None) -> bool:
        return self.has_module_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: SocialApp | None = None) -> bool:
        return self.has_module_permission(request)


class MembershipInline(ReadOnlyMixin, admin.TabularInline):
    """Who belongs (read-only): joining, leaving and roles go through accounts.services (the
    portal's team page), which keeps a client admin in every organization and revokes the
    keys of those who leave."""

    model = Membership
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = fields
    can_delete = False


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "organization", "is_staff", "is_service", "is_active", "date_joined"]
    list_filter = ["is_staff", "is_superuser", "is_service", "is_active", "groups"]
    search_fields = ["email", "full_name"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Profile", {"fields": ["full_name"]}),
        (
            "Permissions",
            {"fields": ["is_active", "is_staff", "is_superuser", "is_service", "groups", "user_permissions"]},
        ),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]
    # What grants rights: only a superuser sets these (a business admin set is_superuser on
    # their own account). Django leaves read-only fields out of the form, so a forged POST
    # changes nothing.
    rights_fields = ["is_staff", "is_superuser", "is_service", "groups", "user_permissions"]

    def get_readonly_fields(self, request: HttpRequest, obj: User | None = None) -> list[str]:
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += self.rights_fields
        return readonly

    def has_change_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        """Business admins manage customers; staff and superuser accounts (their passwords
        too: the password page asks this) only a superuser changes."""
        if obj is not None and (obj.is_staff or obj.is_superuser) and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("membership__organization")

    def save_model(self, request: HttpRequest, obj: User, form, change: bool) -> None:
        """Deactivating a user also revokes the API keys they created: the public query API
        reads keys from Redis, which knows nothing of the account's state."""
        super().save_model(request, obj, form, change)
        membership = getattr(obj, "membership", None)
        if change and "is_active" in form.changed_data and not obj.is_active and membership is not None:
            revoke_keys_of_departing_member(
                user=obj,
                organization=membership.organization,
                actor=request.user,
                reason="its creator's account was deactivated",
            )

    @admin.display(description="Organization")
    def organization(self, obj: User) -> str:
        membership = getattr(obj, "membership", None)
        return membership.organization.name if membership else "-"


class OrganizationAdminForm(forms.ModelForm):
    # The plan when the page was opened: a plan left as it was is not written back over one
    # that Stripe or the customer changed meanwhile.
    plan_when_opened = forms.CharField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = Organization
        fields = ["name", "slug", "plan", "is_active", "require_mfa"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["plan_when_opened"].initial = self.instance.plan_id

    def clean_plan(self):
        plan = self.cleaned_data["plan"]
        opened = self.data.get(self.add_prefix("plan_when_opened"))
        if self.instance.pk and plan is not None and plan.code == opened and plan.code != self.instance.plan_id:
            return self.instance.plan
        if plan is not None and not plan.is_active and plan.code != self.initial.get("plan"):
            raise forms.ValidationError(f"The plan {plan.code!r} is not active: activate it first.")
        return plan


class OrganizationAddForm(forms.ModelForm):
    slug = forms.SlugField(
        max_length=Organization._meta.get_field("slug").max_length,
        required=False,
        help_text="Lower-case letters, digits and hyphens; left blank, it is made from the name.",
    )

    class Meta:
        model = Organization
        fields = ["name", "slug"]

    def clean_slug(self) -> str:
        return self.cleaned_data["slug"].lower()


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    form = OrganizationAdminForm
    list_display = ["name", "slug", "plan", "is_active", "require_mfa", "created_at"]
    list_filter = ["is_active", "require_mfa", "plan"]
    search_fields = ["name", "slug"]
    readonly_fields = ["created_at"]
    inlines = [MembershipInline]

    def get_form(self, request: HttpRequest, obj: Organization | None = None, **kwargs):
        # A new organization starts as the service makes it (plan free); the plan is changed
        # afterwards on its page, through billing.services.change_plan.
        if obj is None:
            kwargs["form"] = OrganizationAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Organization | None = None) -> list[str]:
        if obj is None:
            return list(OrganizationAddForm.Meta.fields)
        return super().get_fields(request, obj)

    def get_inlines(self, request: HttpRequest, obj: Organization | None) -> list:
        return self.inlines if obj is not None else []

    def save_model(self, request: HttpRequest, obj: Organization, form, change: bool) -> None:
        """A new organization through accounts.services.create_organization, which gives it
        its wallet and publishes it to Redis (a plain save left it without a wallet: no
        credits could be added). A change saves only the fields changed on the page, and a
        new plan through billing.services.change_plan: the wallet's version grows and Redis
        shows the plan (a plain save left Redis on the old one, and wrote back the plan the
        page was opened with over one changed meanwhile)."""
        if not change:
            organization = create_organization(name=obj.name, slug=obj.slug or None)
            obj.pk = organization.pk
            obj.refresh_from_db()
            return
        fields = [name for name in form.changed_data if name in OrganizationAdminForm.Meta.fields and name != "plan"]
        if fields:
            obj.save(update_fields=fields)
        if "plan" in form.changed_data:
            from billing.services import change_plan

            change_plan(organization=obj, plan_code=obj.plan_id, actor=request.user)
            obj.refresh_from_db(fields=["plan"])


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    """Read-only, as on the organization's page: joining, leaving and roles go through
    accounts.services, which keep a client admin in every organization and revoke the keys
    of those who leave (a membership deleted here left its keys working in Redis)."""

    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "organization__name", "organization__slug"]


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    """Read-only: client admins invite (and invite again, which resends) from the portal's
    team page, through accounts.services.invite_member, which emails the link. One added
    here got no email, and one edited here could be turned to another address or
    organization without it. Staff may withdraw one."""

    list_display = ["email", "organization", "role", "invited_by", "created_at", "accepted_at", "revoked_at"]
    list_filter = ["role"]
    search_fields = ["email", "organization__name"]
    actions = ["revoke_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("organization", "invited_by")

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.change_invitation")

    @admin.action(description="Revoke selected invitations", permissions=["revoke"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        pending = [invitation for invitation in queryset if invitation.is_pending]
        for invitation in pending:
            revoke_invitation(invitation=invitation, actor=request.user)
        self.message_user(request, f"Revoked {len(pending)} invitation(s).", messages.SUCCESS)


class ActiveLockoutFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Locked now"), ("past", "Expired or cleared")]

    def queryset(self, request, queryset):
        active = Q(cleared_at__isnull=True, locked_until__gt=timezone.now())
        if self.value() == "active":
            return queryset.filter(active)
        if self.value() == "past":
            return queryset.exclude(active)
        return queryset


@admin.register(LoginLockout)
class LoginLockoutAdmin(admin.ModelAdmin):
    """Lock-outs after failed log-ins; "Clear" deletes allauth's counters so the person can log in now."""

    list_display = [
        "email",
        "scope",
        "ip_address",
        "locked_at",
        "locked_until",
        "locked_now",
        "cleared_at",
        "cleared_by",
    ]
    list_filter = [ActiveLockoutFilter, "scope"]
    search_fields = ["email", "ip_address"]
    readonly_fields = [f.name for f in LoginLockout._meta.fields]
    actions = ["clear_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(boolean=True, description="Locked now")
    def locked_now(self, obj: LoginLockout) -> bool:
        return obj.is_active

    @admin.action(description="Clear selected lock-outs (allow log-in again)", permissions=["change"])
    def clear_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = 0
        for lockout in queryset:
            clear_lockout(lockout=lockout, actor=request.user)
            count += 1
        self.message_user(request, f"Cleared {count} lock-out(s).", messages.SUCCESS)
