"""Usage events: what the public query API reported, each charged by a ledger transaction.

A report is recorded as one UsageEvent and one `usage` credits.Transaction, written in one
database transaction (credits.usage_posting); the events of a batch share one transaction
that debits each wallet once. Idempotency is the database's job: the
client's event id (or Idempotency-Key header) is unique per organization while
`idempotency_key_active` is true (a partial unique index), and the row keeps what is needed
to replay the first answer exactly (`remaining_credits`, `recorded_at`, the transaction).
After seven days the purge task flips `idempotency_key_active` off: the key may be used
again, and the usage history (the key included) stays.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

IDEMPOTENCY_KEY_MAX_LENGTH = 128
QUERY_TYPE_MAX_LENGTH = 64


class UsageEvent(models.Model):
    id = models.BigAutoField(primary_key=True)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="usage_events", db_index=False
    )
    # No index on user: nothing lists usage by user, and each index costs every report.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False)
    api_key = models.ForeignKey("apikeys.ApiKey", on_delete=models.PROTECT, related_name="usage_events")
    credits = models.PositiveIntegerField()
    query_type = models.CharField(max_length=QUERY_TYPE_MAX_LENGTH)
    metadata = models.JSONField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=IDEMPOTENCY_KEY_MAX_LENGTH, null=True, blank=True)
    idempotency_key_active = models.BooleanField(
        default=True, help_text="The key still deduplicates (for seven days, then the purge task clears this)."
    )
    fingerprint = models.CharField(
        max_length=64, blank=True, help_text="SHA-256 of the request's payload, to tell a replay from a conflict."
    )
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField(default=timezone.now)
    # A single report has a transaction of its own; a batch is charged by one transaction
    # for all its events (credits.usage_posting).
    transaction = models.ForeignKey("credits.Transaction", on_delete=models.PROTECT, related_name="usage_events")
    remaining_credits = models.BigIntegerField(help_text="The wallet's balance right after this event (replays).")

    class Meta:
        indexes = [
            # The customer list and summary: an organization's events, newest first (keyset).
            models.Index(fields=["organization", "-recorded_at", "-id"], name="usage_event_org_recorded"),
            # The purge task: keys still reserved, oldest first. Small: seven days of keys.
            models.Index(
                fields=["recorded_at"],
                name="usage_event_active_keys",
                condition=Q(idempotency_key_active=True, idempotency_key__isnull=False),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "idempotency_key"],
                condition=Q(idempotency_key_active=True),
                name="usage_event_idempotency_unique",
            ),
            models.CheckConstraint(condition=Q(credits__gte=1), name="usage_event_credits_positive"),
            models.CheckConstraint(
                condition=Q(idempotency_key__isnull=True) | ~Q(idempotency_key=""), name="usage_event_key_not_empty"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.credits} credits of {self.query_type} for org {self.organization_id}"
