from dataclasses import dataclass

from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from accounts.scoping import get_object_for_request, get_request_membership, get_request_organization
from apikeys.models import KEY_PREFIX, ApiKey, hash_key


@dataclass(frozen=True)
class KeyVerification:
    """The answer of /api/keys/verify: either `valid` with the key's facts, or only a reason."""

    valid: bool
    reason: str = ""
    api_key_id: int | None = None
    user_id: int | None = None
    org_id: int | None = None
    scopes: tuple[str, ...] = ()
    remaining_credits: int | None = None
    status: str = ""


def verify_api_key(raw_key: str) -> KeyVerification:
    """Check a full key against PostgreSQL in one query (key, organization and wallet joined).

    Reasons, first that applies: not_found, revoked, expired, credits_paused.
    """
    if not raw_key.startswith(KEY_PREFIX):
        return KeyVerification(valid=False, reason="not_found")
    row = (
        ApiKey.objects.filter(key_hash=hash_key(raw_key))
        .values_list(
            "pk",
            "created_by_id",
            "organization_id",
            "status",
            "scopes",
            "expires_at",
            "organization__wallet__balance",
            "organization__wallet__status",
        )
        .first()
    )
    if row is None:
        return KeyVerification(valid=False, reason="not_found")
    pk, user_id, org_id, status, scopes, expires_at, balance, wallet_status = row
    if status == ApiKey.Status.REVOKED:
        return KeyVerification(valid=False, reason="revoked")
    if status == ApiKey.Status.EXPIRED or (expires_at is not None and expires_at <= timezone.now()):
        return KeyVerification(valid=False, reason="expired")
    if wallet_status == "paused":
        return KeyVerification(valid=False, reason="credits_paused")
    return KeyVerification(
        valid=True,
        api_key_id=pk,
        user_id=user_id,
        org_id=org_id,
        scopes=tuple(scopes or ()),
        remaining_credits=balance or 0,
        status=wallet_status or "active",
    )


def list_api_keys_for_request(request: HttpRequest) -> QuerySet[ApiKey]:
    """The keys of the request's organization, newest first (404 without an organization)."""
    organization = get_request_organization(request)
    return ApiKey.objects.filter(organization=organization).select_related("created_by").order_by("-created_at", "-pk")


def can_manage_api_key(request: HttpRequest, api_key: ApiKey) -> bool:
    """Client admins manage all of their organization's keys; members the keys they created."""
    membership = get_request_membership(request)
    if membership is None or membership.organization_id != api_key.organization_id:
        return False
    return membership.is_client_admin or api_key.created_by_id == request.user.pk


def get_api_key_for_request(request: HttpRequest, api_key_id: int) -> ApiKey:
    """A key of the request's own organization, else 404 (another organization's key too, for staff as well)."""
    return get_object_for_request(
        request,
        ApiKey.objects.filter(organization=get_request_organization(request)).select_related("created_by"),
        pk=api_key_id,
    )
