"""The "Business admins" group: staff who run the business in the admin.

The group is created by a data migration; its model permissions are granted by
`grant_business_admin_permissions`, which runs after every `migrate` (post_migrate, once
per app) so models added later by any app get their permissions without another
migration. Ledger rows, usage and audit are read-only for them: balances move only
through the services (admin actions), never by editing rows.
"""

from typing import Any

BUSINESS_ADMINS = "Business admins"

# app label -> permission actions granted on every model of that app
BUSINESS_ADMIN_ACTIONS: dict[str, tuple[str, ...]] = {
    "accounts": ("view", "add", "change"),
    "billing": ("view", "add", "change"),
    "apikeys": ("view", "add", "change"),
    "credits": ("view", "change"),
    "usage": ("view",),
    "core": ("view",),
    "djstripe": ("view",),
    "account": ("view",),
    # delete: staff reset a customer's lost device (never see or edit the secrets)
    "mfa": ("view", "delete"),
    "socialaccount": ("view",),
}
# models whose rows are an append-only record: view only, whatever the app grants
READ_ONLY_MODELS = {("credits", "transaction"), ("credits", "entry"), ("core", "auditevent"), ("core", "outboxitem")}
# models that hold secrets (OAuth client secrets, users' OAuth tokens): nothing, whatever the app grants
SECRET_MODELS = {("socialaccount", "socialapp"), ("socialaccount", "socialtoken")}


def grant_business_admin_permissions(*, apps: Any, app_label: str | None = None, using: str = "default") -> int:
    """Give the group the permissions of BUSINESS_ADMIN_ACTIONS that exist, none on SECRET_MODELS;
    returns how many it holds."""
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.using(using).get_or_create(name=BUSINESS_ADMINS)
    labels = [app_label] if app_label else list(BUSINESS_ADMIN_ACTIONS)
    wanted, withdrawn = [], []
    for label in labels:
        actions = BUSINESS_ADMIN_ACTIONS.get(label)
        if not actions:
            continue
        for permission in (
            Permission.objects.using(using).filter(content_type__app_label=label).select_related("content_type")
        ):
            action = permission.codename.split("_", 1)[0]
            model = permission.content_type.model
            if (label, model) in SECRET_MODELS:
                withdrawn.append(permission)  # earlier versions granted view on them
                continue
            allowed = ("view",) if (label, model) in READ_ONLY_MODELS else actions
            if action in allowed:
                wanted.append(permission)
    if wanted:
        group.permissions.add(*wanted)
    if withdrawn:
        group.permissions.remove(*withdrawn)
    return group.permissions.count()


def on_post_migrate(sender: Any, app_config: Any = None, using: str = "default", apps: Any = None, **kwargs: Any):
    """post_migrate receiver: grant the permissions of the app just migrated."""
    if app_config is None or app_config.label not in BUSINESS_ADMIN_ACTIONS or apps is None:
        return
    try:
        apps.get_model("auth", "Group")
    except LookupError:
        return
    grant_business_admin_permissions(apps=apps, app_label=app_config.label, using=using)
