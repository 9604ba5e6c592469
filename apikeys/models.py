"""API keys: `cdk_live_<secret>`; only the SHA-256 hex of the full key and its first 12
characters (the visible prefix) are stored. The full key is shown once, at creation."""

import hashlib

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import User

KEY_PREFIX = "cdk_live_"
VISIBLE_PREFIX_LENGTH = 12


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKeyQuerySet(models.QuerySet):
    def authenticate(self, raw_key: str) -> "ApiKey | None":
        """The key whose hash matches `raw_key`, whatever its status; None if unknown."""
        if not isinstance(raw_key, str) or not raw_key.startswith(KEY_PREFIX):
            return None
        return self.select_related("organization").filter(key_hash=hash_key(raw_key)).first()


class ApiKey(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="api_keys")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=VISIBLE_PREFIX_LENGTH)
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        # Granted to service accounts (manage.py create_service_token).
        permissions = [("verify_api_key", "Can verify API keys (service API)")]
        indexes = [
            models.Index(fields=["organization", "status"], name="apikeys_org_status"),
            models.Index(fields=["status", "expires_at"], name="apikeys_status_expires"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["active", "revoked", "expired"]), name="apikeys_apikey_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status="revoked") | Q(revoked_at__isnull=False), name="apikeys_revoked_has_time"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def effective_status(self, now=None) -> str:
        return effective_key_status(self.status, self.expires_at, now or timezone.now())


def effective_key_status(status: str, expires_at, now) -> str:
    """`expired` as soon as expires_at has passed, even before the sweep marks it."""
    if status == ApiKey.Status.ACTIVE and expires_at is not None and expires_at <= now:
        return ApiKey.Status.EXPIRED
    return status


class ServiceAccountManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(is_service=True)


class ServiceAccount(User):
    """The public query API's identities (users with `is_service`), for the admin."""

    objects = ServiceAccountManager()

    class Meta:
        proxy = True
        verbose_name = "service account"
