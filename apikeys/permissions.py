"""Who may call the service API, and what a customer's API key may do on the customer API.

`ApiKeyHasScope`: on a view with `required_api_key_scope`, a request authenticated with an
API key needs that scope (403 `permission_denied` naming it); sessions are not affected.

Service API: service accounts authenticated with their token.

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
from apikeys.models import ApiKey

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


class ApiKeyHasScope(BasePermission):
    """A request authenticated with a customer's API key needs the view's `required_api_key_scope`.

    Scopes are free-form names chosen when the key is issued (default `["query"]`), so a key
    made for querying cannot move money or change plans. A session, or any credential that
    is not an API key, passes: the view's own rules (client admin or member) apply to it as
    before. Put it after `IsAuthenticated`, so missing credentials stay a 401.
    """

    def has_permission(self, request, view) -> bool:
        scope = getattr(view, "required_api_key_scope", None)
        if scope is None or not isinstance(request.auth, ApiKey):
            return True
        if scope in (request.auth.scopes or ()):
            return True
        # DRF builds the permission objects per request, so the message can name the scope.
        self.message = missing_scope_message(scope)
        return False


def missing_scope_message(scope: str) -> str:
    return f"This API key needs the `{scope}` scope: create a key with it to call this endpoint."


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
