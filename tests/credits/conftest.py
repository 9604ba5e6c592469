import time

import pytest
from django.db import connection

from credits import system_accounts
from credits.models import Transaction
from credits.selectors import get_wallet
from credits.services import grant_credits
from tests.factories import CustomerFactory, OrganizationFactory


def fund(organization, amount: int):
    """Put credits in a wallet the way a purchase would."""
    return grant_credits(
        organization=organization,
        amount=amount,
        source=system_accounts.PURCHASE_SANDBOX,
        kind=Transaction.Kind.PURCHASE,
        reason="test purchase",
    )


def wait_for_a_lock_waiter(statement: str, *, seconds: float = 5) -> bool:
    """Inside the transaction holding a lock: wait until another backend running `statement` waits on a lock."""
    for _ in range(int(seconds / 0.05)):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # a fresh view inside our transaction
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
                [f"%{statement}%"],
            )
            if cursor.fetchone()[0]:
                return True
        time.sleep(0.05)
    return False


def balance_of(organization) -> int:
    return get_wallet(organization=organization).balance


@pytest.fixture
def make_org(db):
    def make(credits: int = 0, **kwargs):
        organization = OrganizationFactory(**kwargs)
        if credits:
            fund(organization, credits)
        return organization

    return make


@pytest.fixture
def admin_of(db):
    def make(organization, email: str):
        return CustomerFactory(email=email, org_slug=organization.slug, role="client_admin")

    return make
