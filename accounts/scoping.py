"""What a request may see: the one place that decides it.

A customer sees their own organization's objects; a request authenticated with an API key
(request.auth is an ApiKey) sees the key's organization; staff see every organization's
objects. Objects of another organization are "not found" (404), never "forbidden", so
their existence is not confirmed. Every portal view and customer API goes through here.
"""

from typing import TypeVar

from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest

from accounts.models import Membership, Organization

M = TypeVar("M", bound=Model)


def get_request_membership(request: HttpRequest) -> Membership | None:
    """The membership the request acts under (cached on the request): with an API key, its
    creator's membership in the key's organization (None once they have left it)."""
    if not hasattr(request, "_creditdesk_membership"):
        user = getattr(request, "user", None)
        membership = None
        if user is not None and user.is_authenticated:
            memberships = Membership.objects.select_related("organization", "organization__plan").filter(user=user)
            key_organization = getattr(getattr(request, "auth", None), "organization", None)
            if isinstance(key_organization, Organization):
                memberships = memberships.filter(organization=key_organization)
            membership = memberships.first()
        request._creditdesk_membership = membership
    return request._creditdesk_membership


def get_request_organization(request: HttpRequest) -> Organization:
    """The organization the request acts for: the API key's, else the user's; 404 when none."""
    api_key = getattr(request, "auth", None)
    organization = getattr(api_key, "organization", None)
    if isinstance(organization, Organization):
        return organization
    membership = get_request_membership(request)
    if membership is None:
        raise Http404("No organization.")
    return membership.organization


def is_staff_request(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    api_key = getattr(request, "auth", None)
    return bool(
        user is not None and user.is_authenticated and user.is_staff and getattr(api_key, "organization", None) is None
    )


def scope_queryset(
    request: HttpRequest, queryset: QuerySet[M], *, organization_field: str = "organization"
) -> QuerySet[M]:
    """`queryset` restricted to what the request may see (staff: everything)."""
    if is_staff_request(request):
        return queryset
    return queryset.filter(**{organization_field: get_request_organization(request)})


def get_object_for_request(
    request: HttpRequest, queryset: QuerySet[M], *, organization_field: str = "organization", **lookup: object
) -> M:
    """One object the request may see, else 404 (never 403: that would confirm it exists)."""
    obj = scope_queryset(request, queryset, organization_field=organization_field).filter(**lookup).first()
    if obj is None:
        raise Http404("Not found.")
    return obj
