from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from billing import selectors, services
from billing.models import (
    BulkDiscountTier,
    CreditPackage,
    Dispute,
    Plan,
    Promotion,
    PromotionRedemption,
    Purchase,
    Quote,
    Subscription,
)
from core.admin import ReadOnlyAdmin
from core.errors import ApplicationError


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "monthly_price",
        "monthly_credits",
        "allows_all_query_types",
        "max_api_keys",
        "requests_per_minute",
        "subscriber_discount_percent",
        "stripe_price_id",
        "is_active",
    ]
    list_editable = ["is_active"]
    ordering = ["sort_order"]

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        # The code is what organizations and Redis refer to: set once.
        return ["code"] if obj else []

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(CreditPackage)
class CreditPackageAdmin(admin.ModelAdmin):
    list_display = ["name", "credits", "price", "active", "sort_order"]
    list_editable = ["active", "sort_order"]


@admin.register(BulkDiscountTier)
class BulkDiscountTierAdmin(admin.ModelAdmin):
    list_display = ["min_credits", "percent"]


class PromotionRedemptionInline(admin.TabularInline):
    model = PromotionRedemption
    extra = 0
    fields = ["organization", "purchase", "created_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Promotion)
class PromotionAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "percent_off",
        "bonus_credits",
        "starts_at",
        "ends_at",
        "max_redemptions",
        "redemption_count",
        "active",
    ]
    list_filter = ["active"]
    search_fields = ["code", "description"]
    inlines = [PromotionRedemptionInline]

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).annotate(redemption_total=Count("redemptions"))

    @admin.display(description="Redeemed", ordering="redemption_total")
    def redemption_count(self, obj: Promotion) -> int:
        return obj.redemption_total


@admin.register(PromotionRedemption)
class PromotionRedemptionAdmin(ReadOnlyAdmin):
    list_display = ["promotion", "organization", "purchase", "created_at"]
    list_filter = ["promotion"]
    search_fields = ["organization__name", "promotion__code"]


@admin.register(Quote)
class QuoteAdmin(ReadOnlyAdmin):
    list_display = ["id", "organization", "credits", "bonus_credits", "subtotal", "total", "status", "expires_at"]
    list_filter = ["status"]
    search_fields = ["id", "organization__name"]
    date_hierarchy = "created_at"


class ShortfallFilter(admin.SimpleListFilter):
    title = "refund shortfall"
    parameter_name = "shortfall"

    def lookups(self, request, model_admin):
        return [("yes", "Credits could not all be taken back")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(credits_shortfall__gt=0)
        return queryset


@admin.register(Purchase)
class PurchaseAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "organization",
        "kind",
        "provider",
        "status",
        "credits",
        "amount",
        "refunded_amount",
        "credits_shortfall",
        "created_at",
        "completed_at",
    ]
    list_filter = ["kind", "provider", "status", ShortfallFilter]
    search_fields = ["organization__name", "provider_reference", "provider_payment_id"]
    date_hierarchy = "created_at"


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    list_display = [
        "organization",
        "plan",
        "provider",
        "status",
        "current_period_end",
        "cancel_at_period_end",
        "stripe_subscription_id",
    ]
    list_filter = ["status", "plan", "provider"]
    search_fields = ["organization__name", "stripe_subscription_id", "stripe_customer_id"]


class ResolveDisputeForm(forms.Form):
    resolution = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))
    refund_credits = forms.IntegerField(
        min_value=0, initial=0, help_text="Credits to give back to the organization (0: none)."
    )

    def __init__(self, *args, maximums: dict[int, int], **kwargs):
        super().__init__(*args, **kwargs)
        # The maximum is stated here and enforced by services.resolve_dispute, which reports a
        # larger amount per dispute; a form limit would hide which dispute refused it.
        if len(maximums) == 1:
            [(dispute_id, maximum)] = maximums.items()
            limit = f"At most {maximum:,} for dispute #{dispute_id}"
        else:
            limit = "At most each dispute's maximum, listed above"
        self.fields["refund_credits"].help_text = (
            "Credits to give back to the organization (0: none). "
            f"{limit}: the disputed purchase's credits less what was already refunded or given back for it."
        )


@admin.register(Dispute)
class DisputeAdmin(admin.ModelAdmin):
    list_display = ["id", "organization", "source", "status", "purchase", "amount", "created_at", "resolved_at"]
    list_filter = ["status", "source"]
    search_fields = ["organization__name", "stripe_dispute_id", "reason"]
    readonly_fields = [
        "organization",
        "purchase",
        "source",
        "status",
        "stripe_dispute_id",
        "reason",
        "amount",
        "opened_by",
        "resolution",
        "credits_refunded",
        "money_lost",
        "resolved_by",
        "created_at",
        "resolved_at",
    ]
    actions = ["resolve_disputes"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.action(description="Resolve the selected disputes (optionally returning credits)")
    def resolve_disputes(self, request: HttpRequest, queryset) -> HttpResponse | None:
        maximums = {
            dispute.pk: selectors.get_dispute_refundable_credits(purchase=dispute.purchase)
            for dispute in queryset.select_related("purchase")
        }
        if "apply" in request.POST:
            form = ResolveDisputeForm(request.POST, maximums=maximums)
            if form.is_valid():
                resolved = 0
                for dispute in queryset:
                    try:
                        services.resolve_dispute(
                            dispute=dispute,
                            resolution=form.cleaned_data["resolution"],
                            refund_credits=form.cleaned_data["refund_credits"],
                            actor=request.user,
                        )
                        resolved += 1
                    except ApplicationError as exc:
                        self.message_user(request, f"Dispute #{dispute.pk}: {exc.message}", messages.WARNING)
                self.message_user(
                    request, f"{resolved} dispute(s) resolved.", messages.SUCCESS if resolved else messages.WARNING
                )
                return redirect(request.get_full_path())
        else:
            form = ResolveDisputeForm(maximums=maximums)
        disputes = list(queryset)
        for dispute in disputes:
            dispute.refundable_credits = maximums.get(dispute.pk, 0)
        context = {
            **self.admin_site.each_context(request),
            "title": "Resolve disputes",
            "disputes": disputes,
            "form": form,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "opts": self.model._meta,
        }
        return render(request, "billing/admin_resolve_disputes.html", context)
