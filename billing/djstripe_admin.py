"""dj-stripe's own admin pages, made safe to search.

dj-stripe 2.11 keeps most Stripe fields in its `stripe_data` JSON column, but some of its
admins still search columns that no longer exist (Account.settings, Invoice.number,
Customer.description, ...): every search on those lists was a FieldError, a 500.
"""

from django.apps import apps
from django.contrib import admin
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Model


def _is_column_path(model: type[Model], search_field: str) -> bool:
    for name in search_field.lstrip("^=@").split("__"):
        try:
            field = model._meta.get_field(name)
        except FieldDoesNotExist:
            return False
        if field.is_relation:
            model = field.related_model
    return True


def drop_search_fields_without_columns() -> None:
    for model in apps.get_app_config("djstripe").get_models():
        if admin.site.is_registered(model):
            model_admin = admin.site.get_model_admin(model)
            model_admin.search_fields = [f for f in model_admin.search_fields if _is_column_path(model, f)]
