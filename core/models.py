from django.conf import settings
from django.db import models
from django.utils import timezone


class OutboxItemQuerySet(models.QuerySet):
    def pending(self) -> "OutboxItemQuerySet":
        """Rows whose last change has not been pushed (never pushed, or re-stamped since)."""
        return self.exclude(pushed_at=models.F("changed_at"))


class OutboxItem(models.Model):
    """What the public query API reads from Redis changed, and whether that change was pushed.

    One row per object, kept for good: the change's transaction stamps `changed_at` (an
    upsert), the after-commit push copies the stamp it published into `pushed_at`, and the
    periodic drain pushes what is still `pending()`. Rows are updated in place rather than
    inserted and deleted: neither column is indexed, so PostgreSQL updates them as
    heap-only tuples and prunes the old versions without VACUUM. Deleting every pushed row
    left a dead index entry per change, which every later upsert of that object walked
    (150,000 dead rows after 20 s of usage batches with autovacuum off: batches slowed to
    half their speed).
    """

    class Topic(models.TextChoices):
        ORG = "org", "Organization wallet"
        KEY = "key", "API key"

    topic = models.CharField(max_length=8, choices=Topic.choices)
    object_id = models.BigIntegerField()
    changed_at = models.DateTimeField(default=timezone.now)
    pushed_at = models.DateTimeField(null=True, blank=True, help_text="The changed_at stamp last pushed to Redis.")

    objects = OutboxItemQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["topic", "object_id"], name="core_outbox_topic_object_unique")]

    def __str__(self) -> str:
        return f"{self.topic}:{self.object_id}"


class AuditEvent(models.Model):
    """Append-only record of who changed what (role changes, keys, adjustments, pause, plans)."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    organization = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    event = models.CharField(max_length=64, db_index=True)
    target = models.CharField(max_length=200, blank=True)
    old_value = models.JSONField(null=True, blank=True)
    new_value = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.event} {self.target}"
