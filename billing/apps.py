from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from billing import webhooks  # noqa: F401  (connects the dj-stripe receivers)
        from billing.djstripe_admin import drop_search_fields_without_columns

        # After the admin's autodiscovery, which django.contrib.admin's ready() ran first.
        drop_search_fields_without_columns()
