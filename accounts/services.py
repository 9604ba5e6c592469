import secrets
from datetime import timedelta

from allauth.mfa.models import Authenticator
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email, validate_slug
from django.db import IntegrityError, transaction
from django.db.models import Q, Value
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.text import slugify

from accounts.errors import (
    AlreadyMember,
    EmailTaken,
    InvalidEmail,
    InvalidOrgSlug,
    InvalidRole,
    InvitationExpired,
    InvitationInvalid,
    InvitationNotForYou,
    LastClientAdmin,
    MfaNotEnabled,
    MoveNeedsConfirmation,
    NotClientAdmin,
)
from accounts.models import Invitation, LoginLockout, Membership, Organization, User
from apikeys.services import revoke_keys_of_departing_member
from core.audit import record_audit
from core.effects import delay_on_commit
from core.outbox import record_org_change
from credits.services import create_wallet

# RFC 5321's limits, which Django's validate_email does not check.
MAX_EMAIL_LENGTH = 254
MAX_EMAIL_LOCAL_PART_LENGTH = 64


# How many free-looking slugs to try when concurrent sign-ups keep taking them first.
SLUG_ATTEMPTS = 5


def unique_org_slug(base: str) -> str:
    stem = slugify(base)[:48] or "org"
    slug = stem
    while Organization.objects.filter(slug=slug).exists():
        slug = f"{stem}-{secrets.token_hex(3)}"
    return slug


@transaction.atomic
def create_organization(*, name: str, slug: str | None = None, slug_base: str | None = None) -> Organization:
    """A new organization on plan `free`, with its wallet (overdraft 0, no threshold).

    `slug` is taken as given (IntegrityError when it exists). Without it the slug is the
    first free one made from `slug_base` (default: the name); when a concurrent caller
    inserts that slug between the check and the insert, the next free one is tried.
    """
    if slug:
        organization = Organization.objects.create(name=name, slug=slug)
    else:
        organization = _create_with_a_free_slug(name=name, base=slug_base or name)
    create_wallet(organization=organization)
    record_org_change(organization.pk)
    return organization


def _create_with_a_free_slug(*, name: str, base: str) -> Organization:
    for attempt in range(1, SLUG_ATTEMPTS + 1):
        slug = unique_org_slug(base)
        try:
            with transaction.atomic():  # a savepoint: the caller's transaction survives the violation
                return Organization.objects.create(name=name, slug=slug)
        except IntegrityError:
            # Taken meanwhile (the violation is raised once the other insert has committed,
            # so it is visible now): try the next free slug. Anything else is not ours to hide.
            if attempt == SLUG_ATTEMPTS or not Organization.objects.filter(slug=slug).exists():
                raise
    raise AssertionError("unreachable")


def personal_organization_name(email: str) -> str:
    # RFC 5321 allows 64 characters before the @; the name's column takes 200.
    return f"{email.split('@')[0][:64]}'s organization"


def create_personal_organization(*, user: User) -> Membership:
    """The organization a user gets at sign-up, of which they are the client admin."""
    organization = create_organization(name=personal_organization_name(user.email), slug_base=user.email.split("@")[0])
    return Membership.objects.create(user=user, organization=organization, role=Membership.Role.CLIENT_ADMIN)


def valid_email_address(email: str) -> str:
    """The address stripped and normalized; InvalidEmail when it is not one."""
    email = (email or "").strip()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise InvalidEmail(f"{email!r} is not a valid email address.") from exc
    if len(email) > MAX_EMAIL_LENGTH or len(email.rpartition("@")[0]) > MAX_EMAIL_LOCAL_PART_LENGTH:
        raise InvalidEmail(
            f"{email[:60]!r}... is too long for an email address: at most {MAX_EMAIL_LOCAL_PART_LENGTH} "
            f"characters before the @ and {MAX_EMAIL_LENGTH} in all."
        )
    return User.objects.normalize_email(email)


def email_taken(email: str) -> bool:
    """A user has this address in some letter case, as Python and as the database compare.

    The unique index is on the database's lower(email), which can differ from Python's
    lower() and from iexact (PostgreSQL lowers "İ" to "i", Python to "i" plus a combining
    dot), so both comparisons are asked.
    """
    return (
        User.objects.annotate(email_lower=Lower("email"))
        .filter(Q(email__iexact=email) | Q(email_lower=Lower(Value(email))))
        .exists()
    )


def _email_taken_error(email: str) -> EmailTaken:
    return EmailTaken(f"A user with the email {email} already exists (in some letter case).")


def normalize_new_email(email: str) -> str:
    email = valid_email_address(email)
    if email_taken(email):
        raise _email_taken_error(email)
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
    Slugs are lower-case: `ACME` names the organization `acme`.
    """
    email = normalize_new_email(email)
    if role is not None and role not in Membership.Role.values:
        raise InvalidRole()
    if org_slug is not None:
        org_slug = _valid_org_slug(org_slug)
    if org_slug is None:
        organization = create_organization(name=personal_organization_name(email), slug_base=email.split("@")[0])
        role = role or Membership.Role.CLIENT_ADMIN
    else:
        organization, created = _get_or_create_organization(org_slug)
        role = role or (Membership.Role.CLIENT_ADMIN if created else Membership.Role.MEMBER)
    try:
        with transaction.atomic():
            user = User.objects.create_user(email=email, password=password, full_name=full_name)
    except IntegrityError:
        # Created meanwhile, or equal to another only as the database lowers letters: the
        # same clear error as the check above; the caller's transaction rolls back the rest.
        if email_taken(email):
            raise _email_taken_error(email) from None
        raise
    if not password:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    Membership.objects.create(user=user, organization=organization, role=role)
    return user


def _get_or_create_organization(slug: str) -> tuple[Organization, bool]:
    """The organization with this slug, created (True) when there is none, even if another
    caller creates it between the lookup and the insert (then that one is joined)."""
    organization = Organization.objects.filter(slug=slug).first()
    if organization is not None:
        return organization, False
    try:
        return create_organization(name=slug, slug=slug), True  # atomic: a savepoint of its own
    except IntegrityError:
        organization = Organization.objects.filter(slug=slug).first()
        if organization is None:
            raise
        return organization, False


def _valid_org_slug(slug: str) -> str:
    slug = slug.strip().lower()
    if not slug or len(slug) > Organization._meta.get_field("slug").max_length:
        raise InvalidOrgSlug()
    try:
        validate_slug(slug)
    except ValidationError as exc:
        raise InvalidOrgSlug() from exc
    return slug


# --- Organizations: roles, members, invitations ---------------------------------------


def _require_client_admin(*, actor: User | None, organization: Organization) -> None:
    """Staff may manage any organization; a customer only the one they are client admin of."""
    if actor is None or actor.is_staff:
        return
    membership = Membership.objects.filter(user=actor, organization=organization).first()
    if membership is None or not membership.is_client_admin:
        raise NotClientAdmin()


def _validate_role(role: str) -> str:
    if role not in Membership.Role.values:
        raise InvalidRole()
    return role


def _client_admin_count(organization: Organization) -> int:
    return Membership.objects.filter(organization=organization, role=Membership.Role.CLIENT_ADMIN).count()


def _lock_organization(organization_id: int) -> Organization:
    """Serializes membership changes of one organization (the last-client-admin rule)."""
    return Organization.objects.select_for_update().get(pk=organization_id)


@transaction.atomic
def invite_member(*, organization: Organization, email: str, role: str, invited_by: User | None) -> Invitation:
    """Invite `email` to `organization`; inviting a pending address again refreshes its invitation.

    The email is queued after commit (a new signed link, valid INVITATION_MAX_AGE_DAYS).
    """
    _require_client_admin(actor=invited_by, organization=organization)
    role = _validate_role(role)
    email = valid_email_address(email)
    organization = _lock_organization(organization.pk)
    if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
        raise AlreadyMember(f"{email} is already in the {organization.name} team.")
    invitation = Invitation.objects.pending().filter(organization=organization, email__iexact=email).first()
    if invitation is None:
        invitation = Invitation.objects.create(organization=organization, email=email, role=role, invited_by=invited_by)
    else:
        invitation.role, invitation.invited_by, invitation.created_at = role, invited_by, timezone.now()
        invitation.save(update_fields=["role", "invited_by", "created_at"])
    record_audit(event="member.invited", actor=invited_by, organization=organization, target=email, new={"role": role})
    from accounts.tasks import send_invitation_email

    delay_on_commit(send_invitation_email, invitation.pk)
    return invitation


@transaction.atomic
def revoke_invitation(*, invitation: Invitation, actor: User | None) -> Invitation:
    _require_client_admin(actor=actor, organization=invitation.organization)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.is_pending:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        record_audit(
            event="member.invitation_revoked",
            actor=actor,
            organization=invitation.organization,
            target=invitation.email,
        )
    return invitation


def check_invitation(*, invitation: Invitation, user: User | None = None) -> Invitation:
    """The invitation is pending, not expired and (with `user`) addressed to that user's email."""
    if not invitation.is_pending:
        raise InvitationInvalid("This invitation has already been used or was withdrawn.")
    if invitation.created_at < timezone.now() - timedelta(days=settings.INVITATION_MAX_AGE_DAYS):
        raise InvitationExpired()
    if user is not None and user.email.lower() != invitation.email.lower():
        raise InvitationNotForYou()
    return invitation


@transaction.atomic
def move_user_to_organization(
    *, user: User, organization: Organization, role: str, actor: User | None = None
) -> Membership:
    """Move `user` into `organization` with `role` (a user is in one organization at a time).

    The user may not leave behind an organization that still has members but no client
    admin. The API keys they created in the organization they leave are revoked. An
    organization left without members is marked inactive; its ledger stays.
    """
    role = _validate_role(role)
    current = Membership.objects.filter(user=user).first()
    # Lock both organizations in primary-key order.
    org_ids = sorted({organization.pk, *([current.organization_id] if current else [])})
    locked = {org_id: _lock_organization(org_id) for org_id in org_ids}
    organization = locked[organization.pk]
    current = Membership.objects.select_for_update().filter(user=user).first()
    if current is not None and current.organization_id == organization.pk:
        raise AlreadyMember(f"You are already in the {organization.name} team.")
    if current is not None:
        old_org = locked[current.organization_id]
        others = Membership.objects.filter(organization=old_org).exclude(pk=current.pk)
        other_admins = others.filter(role=Membership.Role.CLIENT_ADMIN)
        if current.is_client_admin and others.exists() and not other_admins.exists():
            raise LastClientAdmin(
                f"You are the last client admin of {old_org.name}: make another member client admin first."
            )
        old_role = current.role
        current.delete()
        revoke_keys_of_departing_member(user=user, organization=old_org, actor=actor)
        record_audit(
            event="member.left",
            actor=actor,
            organization=old_org,
            target=user.email,
            old={"role": old_role},
            new={"organization": organization.pk},
        )
        if not others.exists():
            old_org.is_active = False
            old_org.save(update_fields=["is_active"])
            record_audit(event="organization.deactivated", actor=actor, organization=old_org, target=old_org.slug)
    membership = Membership.objects.create(user=user, organization=organization, role=role)
    if not organization.is_active:
        organization.is_active = True
        organization.save(update_fields=["is_active"])
    record_audit(
        event="member.joined",
        actor=actor,
        organization=organization,
        target=user.email,
        old={"organization": current.organization_id} if current else None,
        new={"role": role},
    )
    return membership


@transaction.atomic
def accept_invitation(*, invitation: Invitation, user: User, confirm_move: bool = False) -> Membership:
    """`user` joins the invitation's organization with its role.

    A user who belongs to another organization must confirm the move (`confirm_move`).
    """
    invitation = Invitation.objects.select_for_update().select_related("organization").get(pk=invitation.pk)
    check_invitation(invitation=invitation, user=user)
    current = Membership.objects.filter(user=user).select_related("organization").first()
    if current is not None and current.organization_id != invitation.organization_id and not confirm_move:
        raise MoveNeedsConfirmation(current_organization=current.organization.name)
    if current is not None and current.organization_id == invitation.organization_id:
        membership = current
    else:
        membership = move_user_to_organization(
            user=user, organization=invitation.organization, role=invitation.role, actor=user
        )
    invitation.accepted_at, invitation.accepted_by = timezone.now(), user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    record_audit(
        event="member.invitation_accepted",
        actor=user,
        organization=invitation.organization,
        target=invitation.email,
        new={"role": membership.role},
    )
    return membership


@transaction.atomic
def change_member_role(*, membership: Membership, role: str, actor: User | None) -> Membership:
    """Change a member's role; the organization always keeps at least one client admin."""
    _require_client_admin(actor=actor, organization=membership.organization)
    role = _validate_role(role)
    _lock_organization(membership.organization_id)
    membership = Membership.objects.select_for_update().select_related("organization", "user").get(pk=membership.pk)
    old_role = membership.role
    if old_role == role:
        return membership
    if old_role == Membership.Role.CLIENT_ADMIN and _client_admin_count(membership.organization) <= 1:
        raise LastClientAdmin()
    membership.role = role
    membership.save(update_fields=["role"])
    record_audit(
        event="member.role_changed",
        actor=actor,
        organization=membership.organization,
        target=membership.user.email,
        old={"role": old_role},
        new={"role": role},
    )
    return membership


@transaction.atomic
def remove_member(*, membership: Membership, actor: User | None) -> Membership:
    """Remove a member (never the last client admin); they get a personal organization of
    their own again, so every user keeps exactly one organization and sees nothing of this one.
    The API keys they created in it are revoked."""
    _require_client_admin(actor=actor, organization=membership.organization)
    organization = _lock_organization(membership.organization_id)
    membership = Membership.objects.select_for_update().select_related("user").get(pk=membership.pk)
    if membership.is_client_admin and _client_admin_count(organization) <= 1:
        raise LastClientAdmin()
    user = membership.user
    membership.delete()
    revoke_keys_of_departing_member(user=user, organization=organization, actor=actor)
    record_audit(
        event="member.removed", actor=actor, organization=organization, target=user.email, old={"role": membership.role}
    )
    return create_personal_organization(user=user)


@transaction.atomic
def set_mfa_requirement(*, organization: Organization, required: bool, actor: User | None) -> Organization:
    """Require (or stop requiring) two-factor authentication of the organization's members."""
    from allauth.mfa.utils import is_mfa_enabled

    _require_client_admin(actor=actor, organization=organization)
    organization = _lock_organization(organization.pk)
    if required and actor is not None and not actor.is_staff and not is_mfa_enabled(actor):
        raise MfaNotEnabled()
    if organization.require_mfa != required:
        old = organization.require_mfa
        organization.require_mfa = required
        organization.save(update_fields=["require_mfa"])
        record_audit(
            event="organization.mfa_requirement",
            actor=actor,
            organization=organization,
            target=organization.slug,
            old={"require_mfa": old},
            new={"require_mfa": required},
        )
    return organization


# --- Second factors ------------------------------------------------------------------


@transaction.atomic
def remove_authenticator(*, authenticator: Authenticator, actor: User | None) -> list[str]:
    """Remove one of a user's second factors (staff resetting a lost device); returns the
    types removed. Recovery codes left without another factor go too, as when the user
    removes one in the portal. The user is told by email after commit."""
    authenticator = Authenticator.objects.select_for_update().select_related("user").filter(pk=authenticator.pk).first()
    if authenticator is None:
        return []
    user = authenticator.user
    removed = [authenticator.type]
    authenticator.delete()
    remaining = Authenticator.objects.filter(user=user)
    if not remaining.exclude(type=Authenticator.Type.RECOVERY_CODES).exists():
        removed += list(remaining.values_list("type", flat=True))
        remaining.delete()
    membership = Membership.objects.filter(user=user).select_related("organization").first()
    record_audit(
        event="mfa.authenticator_removed",
        actor=actor,
        organization=membership.organization if membership else None,
        target=user.email,
        old={"types": removed},
    )
    from accounts.tasks import send_authenticator_removed_email

    delay_on_commit(send_authenticator_removed_email, user.pk)
    return removed


# --- Lock-outs ------------------------------------------------------------------------


@transaction.atomic
def record_lockout(
    *, email: str, scope: str, rate_key: str, ip_address: str | None, locked_for_seconds: float
) -> LoginLockout | None:
    """Record a lock-out once per lock period, and email the account's owner after commit."""
    now = timezone.now()
    existing = LoginLockout.objects.filter(
        rate_key=rate_key, scope=scope, cleared_at__isnull=True, locked_until__gt=now
    )
    if scope == LoginLockout.Scope.IP:
        existing = existing.filter(ip_address=ip_address)
    if existing.exists():
        return None
    user = User.objects.filter(email__iexact=email).first() if email else None
    lockout = LoginLockout.objects.create(
        email=email,
        user=user,
        scope=scope,
        rate_key=rate_key,
        ip_address=ip_address,
        locked_until=now + timedelta(seconds=locked_for_seconds),
    )
    if user is not None and scope == LoginLockout.Scope.ACCOUNT:
        from accounts.tasks import send_lockout_email

        delay_on_commit(send_lockout_email, lockout.pk)
    return lockout


@transaction.atomic
def clear_lockout(*, lockout: LoginLockout, actor: User | None) -> LoginLockout:
    """Lift a lock-out: delete allauth's failure counters for it from the cache, after commit."""
    from accounts.lockouts import clear_rate_limits

    lockout = LoginLockout.objects.select_for_update().get(pk=lockout.pk)
    if lockout.cleared_at is None:
        lockout.cleared_at, lockout.cleared_by = timezone.now(), actor
        lockout.save(update_fields=["cleared_at", "cleared_by"])
        record_audit(event="login.lockout_cleared", actor=actor, target=lockout.email, old={"scope": lockout.scope})
    rate_key, ip_address, scope = lockout.rate_key, lockout.ip_address, lockout.scope
    from core.effects import on_commit

    on_commit(lambda: clear_rate_limits(rate_key=rate_key, ip_address=ip_address if scope == "ip" else None))
    return lockout
