from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Customers and organizations"

    def ready(self) -> None:
        from accounts.permissions import on_post_migrate

        # Permissions are created by django.contrib.auth's post_migrate receiver (connected
        # earlier); ours then grants the Business admins group those of each app.
        post_migrate.connect(on_post_migrate, dispatch_uid="accounts.business_admin_permissions")
