"""A batch is charged by one ledger transaction: one entry per wallet, one usage-revenue line."""

import pytest

from apikeys.services import issue_api_key
from credits import system_accounts
from credits.errors import NotASpend, RefundExceedsSpend
from credits.models import Account, Transaction
from credits.selectors import get_system_account, verify_ledger
from credits.services import grant_credits, refund_credits
from tests.factories import CustomerFactory
from usage import services
from usage.models import UsageEvent


@pytest.fixture
def customers(db):
    """Two organizations with 100 credits each, their users and keys."""
    made = []
    for slug in ("batch-a", "batch-b"):
        user = CustomerFactory(email=f"{slug}@example.test", org_slug=slug)
        organization = user.membership.organization
        key, _ = issue_api_key(organization=organization, created_by=user, name="k")
        grant_credits(organization=organization, amount=100, reason="funds")
        made.append((user, organization, key))
    return made


def items(customers, *events):
    """BatchItems for (customer index, event id, credits)."""
    return [
        services.BatchItem(
            event_id,
            report=services.UsageReport(
                user_id=customers[n][0].pk,
                api_key_id=customers[n][2].pk,
                credits=credits,
                query_type="standard",
                idempotency_key=event_id,
            ),
        )
        for n, event_id, credits in events
    ]


@pytest.fixture(params=["locks last", "locks first"])
def path(request, monkeypatch):
    """Both ways a batch is posted (locks last is PostgreSQL's first try; elsewhere locks first)."""
    if request.param == "locks first":
        monkeypatch.setattr(services, "_record_batch_lock_last", lambda *args: None)
    return request.param


def test_a_batch_is_one_transaction_debiting_each_wallet_once(customers, path):
    (_, org_a, _), (_, org_b, _) = customers
    results = services.record_usage_batch(
        items=items(customers, (0, "a1", 10), (1, "b1", 7), (0, "a2", 20), (0, "a1", 10), (1, "b2", 500))
    )

    assert [(r.status, r.remaining_credits) for r in results] == [
        ("recorded", 90),
        ("recorded", 93),
        ("recorded", 70),
        ("duplicate", 90),
        ("rejected", 93),
    ]
    (batch,) = {event.transaction for event in UsageEvent.objects.all()}
    assert batch.kind == Transaction.Kind.USAGE
    assert batch.memo == "usage: reports in a batch"
    wallet_a, wallet_b = Account.objects.get(organization=org_a), Account.objects.get(organization=org_b)
    revenue = get_system_account(system_accounts.USAGE_REVENUE)
    assert sorted(batch.entries.values_list("account_id", "amount", "balance_after")) == sorted(
        [(wallet_a.pk, -30, 70), (wallet_b.pk, -7, 93), (revenue.pk, 37, None)]
    )
    assert list(UsageEvent.objects.order_by("id").values_list("idempotency_key", "remaining_credits")) == [
        ("a1", 90),
        ("b1", 93),
        ("a2", 70),
    ]
    assert (wallet_a.balance, wallet_b.balance) == (70, 93)
    assert verify_ledger().ok


def test_a_wallets_share_of_a_batch_can_be_refunded_and_no_more(customers):
    (_, org_a, _), (_, org_b, _) = customers
    services.record_usage_batch(items=items(customers, (0, "a1", 10), (1, "b1", 7), (0, "a2", 20)))
    batch = UsageEvent.objects.first().transaction

    with pytest.raises(NotASpend, match="Name the organization"):
        refund_credits(original=batch, amount=1, reason="outage")
    with pytest.raises(RefundExceedsSpend):
        refund_credits(original=batch, amount=8, reason="outage", organization=org_b)
    refund_credits(original=batch, amount=25, reason="outage", organization=org_a)
    with pytest.raises(RefundExceedsSpend):
        refund_credits(original=batch, amount=6, reason="outage", organization=org_a)
    refund_credits(original=batch, amount=7, reason="outage", organization=org_b)

    balances = dict(Account.objects.filter(organization__in=[org_a, org_b]).values_list("organization", "balance"))
    assert balances == {org_a.pk: 95, org_b.pk: 100}
    assert verify_ledger().ok


def test_a_refund_names_an_organization_the_spend_debited(customers):
    (_, org_a, _), (_, org_b, _) = customers
    services.record_usage_batch(items=items(customers, (0, "a1", 10)))
    spend = UsageEvent.objects.get().transaction

    with pytest.raises(NotASpend, match="did not debit"):
        refund_credits(original=spend, amount=1, reason="wrong org", organization=org_b)
    refund_credits(original=spend, amount=10, reason="outage", organization=org_a)
    assert Account.objects.get(organization=org_a).balance == 100
