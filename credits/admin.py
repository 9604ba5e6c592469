"""Staff views of the ledger. Nothing here writes a balance or an entry: changes go through credits.services.

Wallets show their balance read-only; limits and thresholds are saved with `set_wallet`;
credits are added or removed by actions with an intermediate form (amount and required
reason) that call `admin_add_credits` / `admin_remove_credits`. Transactions and entries
are view-only. "System figures" sums the system accounts and what the wallets hold.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse

from core.admin import ReadOnlyAdmin, ReadOnlyMixin
from core.errors import ApplicationError
from credits import services
from credits.models import Account, Entry, LowCreditAlert, Transaction
from credits.selectors import get_system_figures


class AdjustCreditsForm(forms.Form):
    amount = forms.IntegerField(min_value=1, max_value=services.MAX_AMOUNT)
    reason = forms.CharField(
        max_length=services.MAX_REASON_LENGTH, widget=forms.Textarea(attrs={"rows": 3, "cols": 60})
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A reason is required.")
        return reason


class WalletForm(forms.ModelForm):
    class Meta:
        model = Account
        fields = ["overdraft_limit", "low_credit_threshold"]

    def clean_overdraft_limit(self) -> int:
        limit = self.cleaned_data["overdraft_limit"]
        if limit is not None and limit < 0:
            raise forms.ValidationError("The overdraft limit cannot be negative.")
        if limit is not None and self.instance.balance is not None and self.instance.balance < -limit:
            raise forms.ValidationError("The overdraft limit cannot be lowered below the wallet's current debt.")
        return limit

    def clean_low_credit_threshold(self) -> int | None:
        threshold = self.cleaned_data["low_credit_threshold"]
        if threshold is not None and threshold < 0:
            raise forms.ValidationError("The threshold cannot be negative.")
        return threshold


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    form = WalletForm
    change_list_template = "admin/credits/account/change_list.html"
    list_display = [
        "name",
        "organization",
        "kind",
        "balance",
        "status",
        "overdraft_limit",
        "low_credit_threshold",
        "version",
        "updated_at",
    ]
    list_filter = ["kind", "status", "organization__plan"]
    search_fields = [
        "name",
        "code",
        "organization__name",
        "organization__slug",
        "organization__memberships__user__email",
    ]
    list_select_related = ["organization"]
    ordering = ["kind", "name"]
    readonly_fields = [
        "kind",
        "organization",
        "code",
        "name",
        "balance",
        "version",
        "status",
        "low_credit_alerted",
        "created_at",
        "updated_at",
        "history_link",
    ]
    fields = [*readonly_fields[:7], "overdraft_limit", "low_credit_threshold", *readonly_fields[7:]]
    actions = ["add_credits", "remove_credits", "pause", "resume"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Account | None = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Account | None = None):
        if obj is not None and not obj.is_wallet:
            return [*self.readonly_fields, "overdraft_limit", "low_credit_threshold"]
        return self.readonly_fields

    @admin.display(description="History")
    def history_link(self, obj: Account) -> str:
        from django.utils.html import format_html

        url = reverse("admin:credits_entry_changelist") + f"?account__id__exact={obj.pk}"
        return format_html('<a href="{}">Entries of this account</a>', url)

    def save_model(self, request: HttpRequest, obj: Account, form: forms.ModelForm, change: bool) -> None:
        """Limits go through the service (locks, version, outbox, audit); the form never writes the row."""
        if not obj.is_wallet:
            return
        try:
            services.set_wallet(
                organization=obj.organization,
                overdraft_limit=form.cleaned_data["overdraft_limit"],
                low_credit_threshold=form.cleaned_data["low_credit_threshold"],
                actor=request.user,
            )
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)

    def get_urls(self):
        figures = path(
            "system-figures/",
            self.admin_site.admin_view(self.system_figures_view),
            name="credits_account_system_figures",
        )
        return [figures, *super().get_urls()]

    def system_figures_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Ledger system figures",
            "opts": self.model._meta,
            "figures": get_system_figures(),
        }
        return TemplateResponse(request, "admin/credits/system_figures.html", context)

    def _wallets(self, request: HttpRequest, queryset: QuerySet[Account]) -> list[Account]:
        wallets = [account for account in queryset.select_related("organization") if account.is_wallet]
        if len(wallets) < queryset.count():
            self.message_user(request, "System accounts were skipped: only wallets can be adjusted.", messages.WARNING)
        return wallets

    def _adjust(self, request: HttpRequest, queryset: QuerySet[Account], *, remove: bool):
        if not self.has_change_permission(request):
            raise PermissionDenied
        wallets = self._wallets(request, queryset)
        if not wallets:
            return None
        form = AdjustCreditsForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            service = services.admin_remove_credits if remove else services.admin_add_credits
            done = 0
            for wallet in wallets:
                try:
                    service(
                        organization=wallet.organization,
                        amount=form.cleaned_data["amount"],
                        reason=form.cleaned_data["reason"],
                        actor=request.user,
                    )
                    done += 1
                except ApplicationError as exc:
                    self.message_user(
                        request,
                        f"{wallet.organization} (balance {wallet.balance:,}): {exc.message} Nothing was changed there.",
                        messages.ERROR,
                    )
            verb = "Removed" if remove else "Added"
            if done:
                self.message_user(
                    request, f"{verb} {form.cleaned_data['amount']} credits on {done} wallet(s).", messages.SUCCESS
                )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Remove credits" if remove else "Add credits",
            "opts": self.model._meta,
            "form": form,
            "wallets": wallets,
            "action": request.POST.get("action"),
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "remove": remove,
        }
        return TemplateResponse(request, "admin/credits/adjust_credits.html", context)

    @admin.action(description="Add credits to the selected wallets", permissions=["change"])
    def add_credits(self, request: HttpRequest, queryset: QuerySet[Account]):
        return self._adjust(request, queryset, remove=False)

    @admin.action(description="Remove credits from the selected wallets", permissions=["change"])
    def remove_credits(self, request: HttpRequest, queryset: QuerySet[Account]):
        return self._adjust(request, queryset, remove=True)

    @admin.action(description="Pause the selected wallets", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        self._set_status(request, queryset, Account.Status.PAUSED, services.pause_credits, "Paused")

    @admin.action(description="Resume the selected wallets", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        self._set_status(request, queryset, Account.Status.ACTIVE, services.resume_credits, "Resumed")

    def _set_status(self, request: HttpRequest, queryset: QuerySet[Account], status: str, service, verb: str) -> None:
        wallets = self._wallets(request, queryset)
        changed = [wallet for wallet in wallets if wallet.status != status]
        for wallet in changed:
            service(organization=wallet.organization, actor=request.user)
        if changed:
            self.message_user(request, f"{verb} {len(changed)} wallet(s).", messages.SUCCESS)
        if unchanged := len(wallets) - len(changed):
            self.message_user(request, f"{unchanged} wallet(s) already {status}: left as they were.", messages.INFO)


class EntryInline(ReadOnlyMixin, admin.TabularInline):
    model = Entry
    fields = ["id", "account", "amount", "balance_after", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Transaction)
class TransactionAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "created_at", "memo", "actor", "idempotency_key"]
    list_filter = ["kind", "created_at"]
    search_fields = ["=id", "idempotency_key", "memo", "entries__account__organization__name"]
    list_select_related = ["actor"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    inlines = [EntryInline]
    fields = ["id", "kind", "created_at", "memo", "metadata", "actor", "related", "idempotency_key", "fingerprint"]
    readonly_fields = fields
    show_full_result_count = False


@admin.register(Entry)
class EntryAdmin(ReadOnlyAdmin):
    list_display = ["id", "account", "amount", "balance_after", "transaction", "created_at"]
    list_filter = ["account__kind"]
    search_fields = ["account__name", "account__organization__name", "=transaction__id"]
    list_select_related = ["account", "transaction"]
    raw_id_fields = ["account", "transaction"]
    fields = ["id", "transaction", "account", "amount", "balance_after", "created_at"]
    readonly_fields = fields
    show_full_result_count = False


@admin.register(LowCreditAlert)
class LowCreditAlertAdmin(ReadOnlyAdmin):
    list_display = ["account", "balance", "threshold", "recipients", "created_at"]
    list_select_related = ["account"]
    fields = ["account", "version", "balance", "threshold", "recipients", "created_at"]
    readonly_fields = fields
