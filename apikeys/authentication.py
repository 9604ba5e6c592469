"""DRF authentication for customers' API keys and for the public query API's service tokens.

- `ApiKeyAuthentication`: `Authorization: Bearer cdk_live_...`. `request.user` is the key's
  creator, `request.auth` the ApiKey. Only active keys that have not passed `expires_at`,
  while their creator still belongs to the key's organization. `last_used_at` is written
  at most once a minute per key, with a conditional UPDATE that touches no row when
  another request already did it.
- `CachedTokenAuthentication`: DRF's TokenAuthentication with a per-process cache, so the
  hot path does not read the token table on every request. A cached token is trusted for
  `SERVICE_TOKEN_CACHE_SECONDS` (default 5): a revoked token or a deactivated service
  account stops working within that many seconds in every process.

`SERVICE_AUTHENTICATION_CLASSES` is what service endpoints use: the token class comes first
so that missing credentials are a 401 (DRF answers 401 only when the first class has an
`authenticate_header`); an API key or a session still authenticates, and IsServiceAccount
turns it away with a 403.
"""

import hashlib
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import (
    BaseAuthentication,
    SessionAuthentication,
    TokenAuthentication,
    get_authorization_header,
)

from accounts.models import Membership
from apikeys.models import KEY_PREFIX, ApiKey, hash_key

LAST_USED_RESOLUTION = timedelta(minutes=1)
DEFAULT_TOKEN_CACHE_SECONDS = 5
_TOKEN_CACHE_MAX_ENTRIES = 10_000


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        auth = get_authorization_header(request).split()
        if not auth or auth[0].lower() != self.keyword.lower().encode():
            return None
        if len(auth) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: expected 'Bearer <API key>'.")
        try:
            raw_key = auth[1].decode("ascii")
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid API key.") from exc
        if not raw_key.startswith(KEY_PREFIX):
            return None
        return self.authenticate_credentials(raw_key)

    def authenticate_credentials(self, raw_key: str) -> tuple:
        api_key = (
            ApiKey.objects.select_related("organization", "organization__plan", "created_by")
            .annotate(
                creator_is_member=Exists(
                    Membership.objects.filter(user=OuterRef("created_by"), organization=OuterRef("organization"))
                )
            )
            .filter(key_hash=hash_key(raw_key))
            .first()
        )
        now = timezone.now()
        # One message for every failure: an invalid credential tells nothing about the key.
        if api_key is None or api_key.effective_status(now) != ApiKey.Status.ACTIVE:
            raise exceptions.AuthenticationFailed("Invalid or inactive API key.")
        if not api_key.created_by.is_active or not api_key.organization.is_active:
            raise exceptions.AuthenticationFailed("Invalid or inactive API key.")
        if not api_key.creator_is_member:  # a key acts with its creator's rights, only while they belong
            raise exceptions.AuthenticationFailed("Invalid or inactive API key.")
        touch_last_used(api_key, now=now)
        return api_key.created_by, api_key

    def authenticate_header(self, request) -> str:
        return self.keyword


def touch_last_used(api_key: ApiKey, *, now=None) -> None:
    """Record use at most once a minute: no write at all while the stored value is fresh."""
    now = now or timezone.now()
    stale_before = now - LAST_USED_RESOLUTION
    if api_key.last_used_at is not None and api_key.last_used_at > stale_before:
        return
    ApiKey.objects.filter(pk=api_key.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale_before)
    ).update(last_used_at=now)
    api_key.last_used_at = now


_token_cache: dict[str, tuple[float, object, object]] = {}
_token_cache_lock = threading.Lock()


def token_cache_seconds() -> float:
    return float(getattr(settings, "SERVICE_TOKEN_CACHE_SECONDS", DEFAULT_TOKEN_CACHE_SECONDS))


def clear_token_cache() -> None:
    with _token_cache_lock:
        _token_cache.clear()


class CachedTokenAuthentication(TokenAuthentication):
    """TokenAuthentication that trusts a token it has seen for a few seconds (see the module docstring)."""

    def authenticate_credentials(self, key):
        ttl = token_cache_seconds()
        # The cache is keyed by a digest, so the process does not keep the token text around.
        digest = hashlib.sha256(key.encode()).hexdigest()
        now = time.monotonic()
        entry = _token_cache.get(digest)
        if entry is not None and entry[0] > now:
            return entry[1], entry[2]
        user, token = super().authenticate_credentials(key)
        if ttl > 0:
            with _token_cache_lock:
                if len(_token_cache) >= _TOKEN_CACHE_MAX_ENTRIES:
                    _token_cache.clear()
                _token_cache[digest] = (now + ttl, user, token)
        return user, token


SERVICE_AUTHENTICATION_CLASSES = [CachedTokenAuthentication, ApiKeyAuthentication, SessionAuthentication]
