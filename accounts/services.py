import secrets

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils.text import slugify

from accounts.errors import EmailTaken, InvalidEmail, InvalidRole
from accounts.models import Membership, Organization, User
from core.outbox import record_org_change
from credits.services import create_wallet


def unique_org_slug(base: str) -> str:
    stem = slugify(base)[:48] or "org"
    slug = stem
    while Organization.objects.filter(slug=slug).exists():
        slug = f"{stem}-{secrets.token_hex(3)}"
    return slug


@transaction.atomic
def create_organization(*, name: str, slug: str | None = None) -> Organization:
    """A new organization on plan `free`, with its wallet (overdraft 0, no threshold)."""
    organization = Organization.objects.create(name=name, slug=slug or unique_org_slug(name))
    create_wallet(organization=organization)
    record_org_change(organization.pk)
    return organization


def create_personal_organization(*, user: User) -> Membership:
    """The organization a user gets at sign-up, of which they are the client admin."""
    local_part = user.email.split("@")[0]
    organization = create_organization(name=f"{local_part}'s organization", slug=unique_org_slug(local_part))
    return Membership.objects.create(user=user, organization=organization, role=Membership.Role.CLIENT_ADMIN)


def normalize_new_email(email: str) -> str:
    email = (email or "").strip()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise InvalidEmail(f"{email!r} is not a valid email address.") from exc
    email = User.objects.normalize_email(email)
    if User.objects.filter(email__iexact=email).exists():
        raise EmailTaken(f"A user with the email {email} already exists.")
    return email


@transaction.atomic
def create_customer(
    *,
    email: str,
    password: str | None = None,
    org_slug: str | None = None,
    role: str | None = None,
    full_name: str = "",
) -> User:
    """A customer user in an organization.

    With `org_slug` of an existing organization the user joins it (default role member);
    with a new slug, or none, a new organization is created (default role client_admin).
    """
    email = normalize_new_email(email)
    if role is not None and role not in Membership.Role.values:
        raise InvalidRole()
    organization = Organization.objects.filter(slug=org_slug).first() if org_slug else None
    if organization is None:
        name = org_slug or f"{email.split('@')[0]}'s organization"
        organization = create_organization(name=name, slug=org_slug or unique_org_slug(email.split("@")[0]))
        role = role or Membership.Role.CLIENT_ADMIN
    else:
        role = role or Membership.Role.MEMBER
    user = User.objects.create_user(email=email, password=password, full_name=full_name)
    if not password:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    Membership.objects.create(user=user, organization=organization, role=role)
    return user
