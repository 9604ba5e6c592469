from functools import lru_cache

from accounts.models import Organization
from credits.models import Account


def get_system_account(code: str) -> Account:
    """A system account by code. They are installed by migration and never change, so cached per process."""
    return _system_account(code)


@lru_cache(maxsize=64)
def _system_account(code: str) -> Account:
    return Account.objects.get(kind=Account.Kind.SYSTEM, code=code)


def clear_system_account_cache() -> None:
    _system_account.cache_clear()


def get_wallet(*, organization: Organization) -> Account:
    return Account.objects.get(organization=organization)
