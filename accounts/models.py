"""Users, organizations and memberships.

A user belongs to one organization at a time (Membership.user is unique); the
organization owns the credit wallet (credits.Account) and the API keys. Service
accounts (`is_service`) are the public query API's identities: they have DRF tokens
and no organization. Staff (`is_staff`) are the business admins.
"""

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


class UserManager(BaseUserManager):
    use_in_migrations = True

    def get_by_natural_key(self, email: str) -> "User":
        return self.get(email__iexact=email)

    def _create_user(self, email: str, password: str | None, **extra_fields) -> "User":
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra_fields) -> "User":
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email: str, password: str | None = None, **extra_fields) -> "User":
        extra_fields["is_staff"] = True
        extra_fields["is_superuser"] = True
        return self._create_user(email, password, **extra_fields)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField("email address", max_length=254)
    full_name = models.CharField(max_length=150, blank=True)
    is_staff = models.BooleanField(default=False, help_text="Business admins: may use the Django admin.")
    is_active = models.BooleanField(default=True)
    is_service = models.BooleanField(
        default=False, help_text="A service account of the public query API (authenticates with a token)."
    )
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.full_name or self.email

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    plan = models.ForeignKey(
        "billing.Plan",
        to_field="code",
        db_column="plan_code",
        on_delete=models.PROTECT,
        default="free",
        related_name="organizations",
    )
    is_active = models.BooleanField(default=True, help_text="Inactive once it has no members; its ledger stays.")
    require_mfa = models.BooleanField(
        default=False, help_text="Members must set up two-factor authentication before using the portal."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        CLIENT_ADMIN = "client_admin", "Client admin"
        MEMBER = "member", "Member"

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="membership")
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["organization", "role"], name="accounts_membership_org_role")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=["client_admin", "member"]), name="accounts_membership_role_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"

    @property
    def is_client_admin(self) -> bool:
        return self.role == self.Role.CLIENT_ADMIN


class InvitationQuerySet(models.QuerySet):
    def pending(self) -> "InvitationQuerySet":
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True)


class Invitation(models.Model):
    """A client admin's invitation for an email address to join their organization.

    The link carries the id signed with a timestamp (accounts.invitations); it expires
    INVITATION_MAX_AGE_DAYS after it was sent. One pending invitation per address and
    organization: inviting again refreshes it.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(max_length=254)
    role = models.CharField(max_length=20, choices=Membership.Role.choices, default=Membership.Role.MEMBER)
    invited_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                "organization",
                Lower("email"),
                condition=models.Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="accounts_invitation_one_pending_per_email",
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=["client_admin", "member"]), name="accounts_invitation_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} to {self.organization}"

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None


class LoginLockout(models.Model):
    """A lock-out after too many failed log-ins, recorded for staff.

    The counters themselves are allauth's rate limits in the Django cache (Redis in
    production); this row says who was locked, from where and until when, so staff can
    see it in the admin and clear it (which deletes those cache entries).
    """

    class Scope(models.TextChoices):
        ACCOUNT = "account", "Account (email)"
        IP = "ip", "IP address"

    email = models.CharField(max_length=254, db_index=True)
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="lockouts")
    scope = models.CharField(max_length=10, choices=Scope.choices)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    rate_key = models.CharField(max_length=300, help_text="allauth's rate-limit key for the account.")
    locked_at = models.DateTimeField(default=timezone.now)
    locked_until = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True)
    cleared_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-locked_at"]
        verbose_name = "log-in lock-out"

    def __str__(self) -> str:
        return f"{self.email} ({self.get_scope_display()}) at {self.locked_at:%Y-%m-%d %H:%M}"

    @property
    def is_active(self) -> bool:
        return self.cleared_at is None and self.locked_until > timezone.now()
