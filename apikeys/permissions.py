"""Who may call the service API: service accounts authenticated with their token.

Use with `apikeys.authentication.SERVICE_AUTHENTICATION_CLASSES`: no or bad credentials are
a 401 `not_authenticated`; a customer's session or API key, or the token of a user who is
not a service account, is a 403 `permission_denied`. A view may also name the Django
permission the service account needs (`service_permission = "apikeys.verify_api_key"`);
`create_service_token` grants it. The answer is cached per process for the token cache's
TTL, so the hot path reads no permission tables.
"""

import threading
import time

from django.contrib.auth.models import Permission
from django.db.models import Q
from rest_framework.authtoken.models import Token
from rest_framework.permissions import BasePermission

from apikeys.authentication import token_cache_seconds

_permission_cache: dict[tuple[int, str], tuple[float, bool]] = {}
_permission_cache_lock = threading.Lock()


def clear_permission_cache() -> None:
    with _permission_cache_lock:
        _permission_cache.clear()


def has_service_permission(user, perm: str) -> bool:
    """`user.has_perm(perm)` in one query (user or group grant), cached for a few seconds."""
    if user.is_superuser:
        return True
    now = time.monotonic()
    cache_key = (user.pk, perm)
    entry = _permission_cache.get(cache_key)
    if entry is not None and entry[0] > now:
        return entry[1]
    app_label, codename = perm.split(".", 1)
    allowed = (
        Permission.objects.filter(content_type__app_label=app_label, codename=codename)
        .filter(Q(user=user) | Q(group__user=user))
        .exists()
    )
    ttl = token_cache_seconds()
    if ttl > 0:
        with _permission_cache_lock:
            if len(_permission_cache) >= 10_000:
                _permission_cache.clear()
            _permission_cache[cache_key] = (now + ttl, allowed)
    return allowed


class IsServiceAccount(BasePermission):
    message = "Only service accounts may call this endpoint."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active and getattr(user, "is_service", False)):
            return False
        if not isinstance(request.auth, Token):
            return False
        perm = getattr(view, "service_permission", None)
        return perm is None or has_service_permission(user, perm)
