"""Revoke the keys whose creator no longer belongs to the key's organization.

Since this release a member who leaves an organization (removed, or moved by accepting
another invitation) has the keys they created there revoked. Keys left behind by people who
left before it are revoked here, with an outbox row each so that the periodic drain
publishes the new status to Redis.
"""

from django.db import migrations
from django.db.models import Exists, OuterRef
from django.utils import timezone


def revoke_keys_of_departed_creators(apps, schema_editor):
    ApiKey = apps.get_model("apikeys", "ApiKey")
    Membership = apps.get_model("accounts", "Membership")
    OutboxItem = apps.get_model("core", "OutboxItem")
    creator_is_member = Exists(Membership.objects.filter(user=OuterRef("created_by"), organization=OuterRef("organization")))
    ids = list(
        ApiKey.objects.exclude(status="revoked")
        .annotate(creator_is_member=creator_is_member)
        .filter(creator_is_member=False)
        .values_list("pk", flat=True)
    )
    if not ids:
        return
    now = timezone.now()
    ApiKey.objects.filter(pk__in=ids).update(status="revoked", revoked_at=now)
    OutboxItem.objects.bulk_create(
        [OutboxItem(topic="key", object_id=key_id, changed_at=now) for key_id in ids],
        update_conflicts=True,
        unique_fields=["topic", "object_id"],
        update_fields=["changed_at", "pushed_at"],
    )


class Migration(migrations.Migration):
    dependencies = [
        ("apikeys", "0003_service_account"),
        ("accounts", "0003_business_admins_group"),
        ("core", "0002_outbox_rows_updated_in_place"),
    ]

    operations = [migrations.RunPython(revoke_keys_of_departed_creators, migrations.RunPython.noop)]
