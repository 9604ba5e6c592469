import pytest

from credits import services, system_accounts
from credits.errors import WalletNotFound
from credits.selectors import get_balance, get_system_figures, get_wallet, list_wallet_entries
from tests.credits.conftest import fund

pytestmark = pytest.mark.django_db


def test_wallet_history_pages_newest_first_by_keyset(make_org):
    organization = make_org()
    for amount in range(1, 8):
        fund(organization, amount)
    wallet = get_wallet(organization=organization)
    first = list_wallet_entries(wallet=wallet, limit=3)
    assert [entry.amount for entry in first] == [7, 6, 5]
    assert first.entries[0].balance_after == 28
    second = list_wallet_entries(wallet=wallet, before_id=first.next_before_id, limit=3)
    assert [entry.amount for entry in second] == [4, 3, 2]
    last = list_wallet_entries(wallet=wallet, before_id=second.next_before_id, limit=3)
    assert [entry.amount for entry in last] == [1]
    assert last.next_before_id is None


def test_wallet_history_shows_only_that_wallet(make_org):
    mine, theirs = make_org(credits=5), make_org(credits=9)
    page = list_wallet_entries(wallet=get_wallet(organization=mine))
    assert [entry.amount for entry in page] == [5]
    assert len(list_wallet_entries(wallet=get_wallet(organization=theirs))) == 1


def test_a_balance_read_is_one_query_on_the_stored_balance(make_org, django_assert_num_queries):
    organization = make_org(credits=42)
    with django_assert_num_queries(1) as captured:
        assert get_balance(organization_id=organization.pk) == 42
    assert "SUM" not in captured.captured_queries[0]["sql"].upper()


def test_an_organization_without_a_wallet_is_not_found(db):
    from accounts.models import Organization

    organization = Organization.objects.create(name="Bare", slug="bare")
    with pytest.raises(WalletNotFound):
        get_wallet(organization=organization)
    assert get_balance(organization_id=organization.pk) is None


def test_system_figures_balance_against_what_wallets_hold(make_org):
    a, b = make_org(credits=100), make_org(credits=50)
    services.spend_credits(organization=a, amount=30)
    services.set_wallet(organization=b, overdraft_limit=20)
    services.spend_credits(organization=b, amount=60)
    services.pause_credits(organization=b)
    figures = get_system_figures()
    totals = {account.code: total for account, total in figures.system_accounts}
    assert totals[system_accounts.PURCHASE_SANDBOX] == -150
    assert totals[system_accounts.USAGE_REVENUE] == 90
    assert totals[system_accounts.EXPIRY] == 0
    assert figures.outstanding == 60
    assert sum(totals.values()) + figures.outstanding == 0
    assert (figures.wallets_in_debt, figures.paused_wallets) == (1, 1)
