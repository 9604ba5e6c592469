"""Issuing, revoking and expiring API keys. Each change writes an audit row and an outbox row
in its transaction; the Redis hash `P:key:<sha256>` is written after commit."""

import re
import secrets
import unicodedata
from collections.abc import Iterable
from datetime import datetime

from django.contrib.auth.models import Permission
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework.authtoken.models import Token

from accounts.models import Membership, Organization, User
from apikeys.errors import (
    ApiKeyLimitReached,
    ExpiryInPast,
    InvalidKeyName,
    InvalidScopes,
    InvalidServiceName,
    NotAMember,
    NotAServiceAccount,
    ServiceNameTaken,
)
from apikeys.models import KEY_PREFIX, VISIBLE_PREFIX_LENGTH, ApiKey, hash_key
from core.audit import record_audit
from core.outbox import record_changes

DEFAULT_SCOPES = ("query",)
SCOPE_PATTERN = re.compile(r"^[a-z0-9:_-]{1,64}$")
MAX_SCOPES = 32
NAME_MAX_LENGTH = 100


def generate_raw_key() -> str:
    """`cdk_live_` + 43 URL-safe characters (32 random bytes from `secrets`)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def normalize_scopes(scopes: Iterable[str] | str | None) -> list[str]:
    """Scope names in the given order, without duplicates; `["query"]` when none are given."""
    if scopes is None:
        return list(DEFAULT_SCOPES)
    if isinstance(scopes, str):
        scopes = [part.strip() for part in scopes.split(",") if part.strip()]
    result: list[str] = []
    for scope in scopes:
        if not isinstance(scope, str) or not SCOPE_PATTERN.match(scope):
            raise InvalidScopes(f"Invalid scope {scope!r}: use 1 to 64 characters of a-z, 0-9, ':', '_' and '-'.")
        if scope not in result:
            result.append(scope)
    if not result:
        return list(DEFAULT_SCOPES)
    if len(result) > MAX_SCOPES:
        raise InvalidScopes(f"A key has at most {MAX_SCOPES} scopes.")
    return result


def valid_key_name(name: str | None) -> str:
    """The name stripped; InvalidKeyName when empty, too long, or holding control characters.

    Tabs, line breaks, escape sequences and the like would be stored and shown as given
    (in the portal, the admin, audit rows and exports), so they are refused, not removed.
    """
    name = (name or "").strip()
    if not name or len(name) > NAME_MAX_LENGTH:
        raise InvalidKeyName()
    # Cc: C0 and C1 controls and DEL; Cs: lone surrogates (undecodable bytes in a command's arguments).
    bad = next((char for char in name if unicodedata.category(char) in ("Cc", "Cs")), None)
    if bad is not None:
        raise InvalidKeyName(f"A key name cannot contain control characters (found U+{ord(bad):04X}).")
    return name


def count_active_keys(*, organization: Organization, now: datetime | None = None) -> int:
    now = now or timezone.now()
    return (
        ApiKey.objects.filter(organization=organization, status=ApiKey.Status.ACTIVE)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .count()
    )


@transaction.atomic
def issue_api_key(
    *,
    organization: Organization,
    created_by,
    name: str,
    scopes: Iterable[str] | str | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key for `organization`; returns it and the raw key, which is never stored or shown again.

    Only the SHA-256 hex and the first 12 characters are kept. The plan's `max_api_keys`
    caps the organization's active keys (ApiKeyLimitReached).
    """
    name = valid_key_name(name)
    scopes = normalize_scopes(scopes)
    now = timezone.now()
    if expires_at is not None:
        if timezone.is_naive(expires_at):
            raise ExpiryInPast("The expiry needs a time zone.")
        if expires_at <= now:
            raise ExpiryInPast()
    # Lock the organization so two concurrent requests cannot both take the last free slot, and
    # check membership under it: removing a member takes the same lock, so a key cannot be
    # issued to someone whose removal (and the revocation of their keys) commits meanwhile.
    locked = Organization.objects.select_for_update(of=("self",)).select_related("plan").get(pk=organization.pk)
    if not Membership.objects.filter(user_id=created_by.pk, organization_id=organization.pk).exists():
        raise NotAMember()
    limit = locked.plan.max_api_keys
    if limit is not None and count_active_keys(organization=locked, now=now) >= limit:
        raise ApiKeyLimitReached(
            f"The {locked.plan.name} plan allows {limit} active API key{'s' if limit != 1 else ''}; "
            "revoke one or change the plan.",
            limit=limit,
        )

    raw_key = generate_raw_key()
    api_key = ApiKey.objects.create(
        organization=organization,
        created_by=created_by,
        name=name,
        prefix=raw_key[:VISIBLE_PREFIX_LENGTH],
        key_hash=hash_key(raw_key),
        scopes=scopes,
        expires_at=expires_at,
        created_at=now,
    )
    record_audit(
        event="api_key.issued",
        actor=created_by,
        organization=organization,
        target=f"api_key:{api_key.pk}",
        new={
            "name": name,
            "prefix": api_key.prefix,
            "scopes": scopes,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    record_changes("key", [api_key.pk])
    return api_key, raw_key


@transaction.atomic
def revoke_api_key(*, api_key: ApiKey, actor=None) -> ApiKey:
    """Revoke a key (an expired one too). Revoking a revoked key changes nothing."""
    locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    if locked.status == ApiKey.Status.REVOKED:
        return locked
    now = timezone.now()
    old_status = locked.status
    locked.status = ApiKey.Status.REVOKED
    locked.revoked_at = now
    locked.revoked_by = actor if getattr(actor, "pk", None) else None
    locked.save(update_fields=["status", "revoked_at", "revoked_by"])
    record_audit(
        event="api_key.revoked",
        actor=actor,
        organization=locked.organization,
        target=f"api_key:{locked.pk}",
        old={"status": old_status},
        new={"status": locked.status},
    )
    record_changes("key", [locked.pk])
    return locked


@transaction.atomic
def revoke_keys_of_departing_member(
    *, user: User, organization: Organization, actor=None, reason: str = "its creator left the organization"
) -> list[int]:
    """Revoke the keys `user` created in `organization`, which they are leaving (or their
    account is deactivated); returns their ids.

    Only the creator ever saw a key's secret, and a key acts with its creator's rights in
    its organization: left active, it would keep someone who left spending the
    organization's credits and, through the customer API, acting as a member.
    """
    old_statuses = dict(
        ApiKey.objects.select_for_update()
        .filter(organization=organization, created_by=user)
        .exclude(status=ApiKey.Status.REVOKED)
        .order_by("pk")
        .values_list("pk", "status")
    )
    if not old_statuses:
        return []
    ids = list(old_statuses)
    ApiKey.objects.filter(pk__in=ids).update(
        status=ApiKey.Status.REVOKED,
        revoked_at=timezone.now(),
        revoked_by=actor if getattr(actor, "pk", None) else None,
    )
    for key_id, old_status in old_statuses.items():
        record_audit(
            event="api_key.revoked",
            actor=actor,
            organization=organization,
            target=f"api_key:{key_id}",
            old={"status": old_status},
            new={"status": ApiKey.Status.REVOKED, "reason": reason},
        )
    record_changes("key", ids)
    return ids


@transaction.atomic
def expire_api_keys(*, now: datetime | None = None, limit: int = 5000) -> list[int]:
    """Mark active keys past `expires_at` as expired (idempotent); returns their ids."""
    now = now or timezone.now()
    ids = list(
        ApiKey.objects.select_for_update(skip_locked=True)
        .filter(status=ApiKey.Status.ACTIVE, expires_at__lte=now)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    if not ids:
        return []
    ApiKey.objects.filter(pk__in=ids, status=ApiKey.Status.ACTIVE).update(status=ApiKey.Status.EXPIRED)
    record_changes("key", ids)
    return ids


# --- Service accounts (the public query API's identities) ------------------------------------

SERVICE_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
SERVICE_EMAIL_DOMAIN = "service.creditdesk.invalid"
# What a service account may do; a permission whose app does not define it yet is skipped.
SERVICE_PERMISSIONS = ("apikeys.verify_api_key", "usage.report_usage")


def service_email(name: str) -> str:
    return f"{name}@{SERVICE_EMAIL_DOMAIN}"


def grant_service_permissions(user) -> list[str]:
    granted = []
    for perm in SERVICE_PERMISSIONS:
        app_label, codename = perm.split(".", 1)
        permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
        if permission is not None:
            user.user_permissions.add(permission)
            granted.append(perm)
    return granted


@transaction.atomic
def create_service_account(*, name: str, actor=None):
    """A user flagged `is_service` with a DRF token and the service permissions; returns (user, token key).

    The name is 1 to 64 characters of a-z, 0-9, '.', '_' and '-'; a name already used fails.
    """
    name = (name or "").strip().lower()
    if not SERVICE_NAME_PATTERN.match(name):
        raise InvalidServiceName()
    email = service_email(name)
    if User.objects.filter(email__iexact=email).exists():
        raise ServiceNameTaken(f"A service account named {name!r} already exists.")
    try:
        with transaction.atomic():
            user = User.objects.create_user(email=email, password=None, full_name=name, is_service=True)
    except IntegrityError as exc:
        raise ServiceNameTaken(f"A service account named {name!r} already exists.") from exc
    permissions = grant_service_permissions(user)
    token = Token.objects.create(user=user)
    record_audit(
        event="service_account.created", actor=actor, target=f"user:{user.pk}", new={"name": name, "perms": permissions}
    )
    return user, token.key


@transaction.atomic
def rotate_service_token(*, user, actor=None) -> str:
    """Replace the service account's token (the old one stops within SERVICE_TOKEN_CACHE_SECONDS)."""
    if not user.is_service:
        raise NotAServiceAccount()
    Token.objects.filter(user=user).delete()
    token = Token.objects.create(user=user)
    record_audit(event="service_token.rotated", actor=actor, target=f"user:{user.pk}")
    return token.key


@transaction.atomic
def revoke_service_token(*, user, actor=None) -> bool:
    """Delete the service account's token; True if there was one."""
    deleted, _ = Token.objects.filter(user=user).delete()
    if deleted:
        record_audit(event="service_token.revoked", actor=actor, target=f"user:{user.pk}")
    return bool(deleted)
