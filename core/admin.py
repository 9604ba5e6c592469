from django.contrib import admin
from django.http import HttpRequest


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
