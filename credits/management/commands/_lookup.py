"""Shared by the credits commands: an operator names an organization by one of its users' email."""

from accounts.models import Membership, Organization
from core.errors import NotFoundError


def organization_for_email(email: str) -> Organization:
    membership = (
        Membership.objects.select_related("organization").filter(user__email__iexact=(email or "").strip()).first()
    )
    if membership is None:
        raise NotFoundError(f"No customer with the email {email!r} (or the user belongs to no organization).")
    return membership.organization
