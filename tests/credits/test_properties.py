"""Random sequences of grants, spends, refunds, transfers and limit changes keep every invariant."""

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credits import services
from credits.errors import CreditsPaused, InsufficientCredits, RefundExceedsSpend
from credits.selectors import get_system_figures, get_wallet, verify_ledger
from tests.credits.conftest import fund
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

WALLETS = 3
amounts = st.integers(min_value=1, max_value=60)
wallet_index = st.integers(min_value=0, max_value=WALLETS - 1)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), wallet_index, amounts),
        st.tuples(st.just("spend"), wallet_index, amounts),
        st.tuples(st.just("refund"), st.integers(min_value=0, max_value=50), amounts),
        st.tuples(st.just("transfer"), wallet_index, wallet_index, amounts),
        st.tuples(st.just("overdraft"), wallet_index, st.integers(min_value=0, max_value=40)),
        st.tuples(st.just("pause"), wallet_index),
        st.tuples(st.just("resume"), wallet_index),
    ),
    max_size=30,
)


class Rollback(Exception):
    pass


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations)
def test_random_operations_keep_every_invariant(db, steps):
    try:
        with transaction.atomic():
            run_and_check(steps)
            raise Rollback
    except Rollback:
        pass


def run_and_check(steps):
    orgs = [OrganizationFactory() for _ in range(WALLETS)]
    balance = [0] * WALLETS
    limit = [0] * WALLETS
    paused = [False] * WALLETS
    spends: list[tuple[int, object, int]] = []  # (wallet, transaction, refundable)
    for step in steps:
        op = step[0]
        if op == "grant":
            _, i, amount = step
            fund(orgs[i], amount)
            balance[i] += amount
        elif op == "spend":
            _, i, amount = step
            expected = "paused" if paused[i] else "short" if balance[i] - amount < -limit[i] else "ok"
            outcome = attempt(services.spend_credits, organization=orgs[i], amount=amount)
            assert outcome[0] == expected
            if expected == "ok":
                balance[i] -= amount
                spends.append([i, outcome[1], amount])
        elif op == "refund":
            _, n, amount = step
            if not spends:
                continue
            spend = spends[n % len(spends)]
            expected = "too_much" if amount > spend[2] else "ok"
            outcome = attempt(services.refund_credits, original=spend[1], amount=amount, reason="prop")
            assert outcome[0] == expected
            if expected == "ok":
                balance[spend[0]] += amount
                spend[2] -= amount
        elif op == "transfer":
            _, i, j, amount = step
            if i == j:
                continue
            expected = "paused" if paused[i] else "short" if balance[i] - amount < -limit[i] else "ok"
            outcome = attempt(
                services.transfer_credits,
                from_organization=orgs[i],
                to_organization=orgs[j],
                amount=amount,
                reason="prop",
            )
            assert outcome[0] == expected
            if expected == "ok":
                balance[i] -= amount
                balance[j] += amount
        elif op == "overdraft":
            _, i, new_limit = step
            if balance[i] >= -new_limit:
                services.set_wallet(organization=orgs[i], overdraft_limit=new_limit)
                limit[i] = new_limit
        elif op in ("pause", "resume"):
            _, i = step
            (services.pause_credits if op == "pause" else services.resume_credits)(organization=orgs[i])
            paused[i] = op == "pause"
    assert [get_wallet(organization=org).balance for org in orgs] == balance
    check = verify_ledger()
    assert check.ok, check.violations
    figures = get_system_figures()
    assert sum(total for _, total in figures.system_accounts) + figures.outstanding == 0


def attempt(service, **kwargs):
    try:
        return ("ok", service(**kwargs))
    except CreditsPaused:
        return ("paused", None)
    except InsufficientCredits:
        return ("short", None)
    except RefundExceedsSpend:
        return ("too_much", None)
