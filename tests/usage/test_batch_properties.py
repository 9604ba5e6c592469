"""A batch posted with its wallets' locks last answers and writes what it would with them first.

Hypothesis draws a wallet, a batch and a change that lands between the batch's read of the
wallet and its statement (another report's spend, a top-up, a pause, a new overdraft limit).
The reference is the same batch posted with its locks first after the same change; a batch
that writes nothing may also answer as of its read, as if it came before the change.
"""

from datetime import UTC, datetime
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apikeys.services import issue_api_key
from credits.models import Account, Entry
from credits.selectors import verify_ledger
from credits.services import grant_credits, pause_credits, set_wallet, spend_credits
from tests.factories import CustomerFactory
from tests.usage.conftest import rolled_back
from usage import services
from usage.models import UsageEvent

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

changes = st.one_of(
    st.just(("none",)),
    st.tuples(st.just("spend"), st.integers(min_value=1, max_value=80)),
    st.tuples(st.just("grant"), st.integers(min_value=1, max_value=80)),
    st.just(("pause",)),
    st.tuples(st.just("overdraft"), st.integers(min_value=0, max_value=40)),
)
batches = st.lists(
    st.tuples(st.integers(min_value=0, max_value=5), st.integers(min_value=1, max_value=40)), min_size=1, max_size=12
)


@pytest.fixture
def customer(db):
    user = CustomerFactory(email="batch-properties@example.test", org_slug="batch-properties")
    organization = user.membership.organization
    key, _ = issue_api_key(organization=organization, created_by=user, name="k")
    return user, organization, key


def apply(change, organization):
    kind = change[0]
    if kind == "spend":
        wallet = Account.objects.get(organization=organization)
        if wallet.balance - change[1] >= -wallet.overdraft_limit:
            spend_credits(organization=organization, amount=change[1])
    elif kind == "grant":
        grant_credits(organization=organization, amount=change[1], reason="top-up")
    elif kind == "pause":
        pause_credits(organization=organization)
    elif kind == "overdraft":
        set_wallet(organization=organization, overdraft_limit=change[1])


def outcome(items, organization, events_before, entries_before):
    results = services.record_usage_batch(items=items, now=NOW)
    wallet = Account.objects.get(organization=organization)
    return (
        [(r.event_id, r.status, r.error, r.remaining_credits) for r in results],
        (wallet.balance, wallet.version, wallet.status, wallet.low_credit_alerted),
        list(
            UsageEvent.objects.filter(id__gt=events_before)
            .order_by("id")
            .values_list("idempotency_key", "credits", "remaining_credits")
        ),
        list(
            Entry.objects.filter(account=wallet, id__gt=entries_before, transaction__usage_events__isnull=False)
            .distinct()
            .order_by("id")
            .values_list("amount", "balance_after")
        ),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    start=st.integers(min_value=0, max_value=120),
    threshold=st.one_of(st.none(), st.integers(min_value=1, max_value=100)),
    batch=batches,
    change=changes,
)
def test_locks_last_and_locks_first_give_the_same_batch(customer, start, threshold, batch, change):
    user, organization, key = customer
    items = [
        services.BatchItem(
            f"e{index}",
            report=services.UsageReport(
                user_id=user.pk,
                api_key_id=key.pk,
                credits=credits,
                query_type="standard",
                idempotency_key=f"e{index}",
            ),
        )
        for index, credits in batch
    ]
    with rolled_back():
        if start:
            grant_credits(organization=organization, amount=start, reason="start")
        set_wallet(organization=organization, low_credit_threshold=threshold)
        events_before = UsageEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        entries_before = Entry.objects.order_by("-id").values_list("id", flat=True).first() or 0

        with mock.patch.object(services, "_record_batch_lock_last", return_value=None):
            with rolled_back():
                apply(change, organization)
                change_first = outcome(items, organization, events_before, entries_before)
            with rolled_back():
                batch_first = outcome(items, organization, events_before, entries_before)

        real_read = services.read_wallets

        def read_then_change(wallet_ids):
            states = real_read(wallet_ids)
            apply(change, organization)
            return states

        with mock.patch.object(services, "read_wallets", read_then_change):
            actual = outcome(items, organization, events_before, entries_before)

        if actual != change_first:
            # Only a batch that writes nothing may answer as read, as if it came first.
            assert not any(status == "recorded" for _, status, _, _ in actual[0])
            assert actual[0] == batch_first[0]
        assert verify_ledger().ok
