"""factory-boy factories that build state through the services, never raw ledger writes."""

import factory

from accounts import services as account_services
from accounts.models import Organization, User


class OrganizationFactory(factory.Factory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return account_services.create_organization(**kwargs)


class CustomerFactory(factory.Factory):
    """A customer user; `org_slug` joins an existing organization or creates it."""

    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    password = "correct-horse-battery-9"
    org_slug = None
    role = None

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return account_services.create_customer(**kwargs)


def enrol_totp(user, *, secret: str = "JBSWY3DPEHPK3PXP"):
    """The user's TOTP authenticator and recovery codes, as allauth's activation writes them."""
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
    from allauth.mfa.totp.internal.auth import TOTP

    totp = TOTP.activate(user, secret).instance
    RecoveryCodes.activate(user)
    return totp
