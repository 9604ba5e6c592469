from django.conf import settings
from django.db import models
from django.utils import timezone


class OutboxItem(models.Model):
    """Something the public query API reads from Redis changed and has not been pushed yet.

    Written in the same database transaction as the change (one upserted row per object),
    cleared by the after-commit push, drained by a periodic task when that push is lost.
    """

    class Topic(models.TextChoices):
        ORG = "org", "Organization wallet"
        KEY = "key", "API key"

    topic = models.CharField(max_length=8, choices=Topic.choices)
    object_id = models.BigIntegerField()
    changed_at = models.DateTimeField(default=timezone.now)

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
