from django.db.models import QuerySet
from django.http import Http404, HttpRequest

from accounts.models import Invitation, Membership, Organization, User


def get_membership(*, user: User) -> Membership | None:
    return Membership.objects.select_related("organization", "organization__plan").filter(user=user).first()


def get_organization_for_user(*, user: User) -> Organization:
    """The organization a signed-in customer acts for; 404 when they have none."""
    membership = get_membership(user=user)
    if membership is None:
        raise Http404("You do not belong to an organization.")
    return membership.organization


def get_organization_for_request(request: HttpRequest) -> Organization:
    return get_organization_for_user(user=request.user)


def list_members(*, organization: Organization) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(organization=organization)
        .select_related("user")
        .order_by("role", "user__email")  # client_admin sorts before member
    )


def list_pending_invitations(*, organization: Organization) -> QuerySet[Invitation]:
    return Invitation.objects.pending().filter(organization=organization).select_related("invited_by")
