"""The one-statement report (context read and posting together) answers and writes as the two queries do.

Hypothesis draws the state a report meets: the key (status, expiry around the report's
time, or another organization's), the plan's query types (including shapes the plan
check treats as "none allowed": an object, a string, a nested list), the wallet (paused,
balance, overdraft limit), an earlier event holding the idempotency key (same or other
payload) and an unknown user. The reference is the same report decided in two queries
(the context read, then the checks in Python, then the posting), on the same state.
"""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apikeys.models import ApiKey
from apikeys.services import issue_api_key
from billing.models import Plan
from core.errors import ApplicationError
from credits.models import Account, Entry
from credits.selectors import verify_ledger
from credits.services import grant_credits, pause_credits, set_wallet, spend_credits
from tests.factories import CustomerFactory
from tests.usage.conftest import rolled_back
from usage import services
from usage.models import UsageEvent

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

states = st.fixed_dictionaries(
    {
        "key": st.sampled_from(["active", "revoked", "expired", "other_org", "missing"]),
        "expires_at": st.sampled_from([None, NOW - timedelta(microseconds=1), NOW, NOW + timedelta(microseconds=1)]),
        "allows_all": st.booleans(),
        "allowed": st.sampled_from(
            [[], ["standard"], ["other", "standard"], ["Standard"], {"standard": True}, "standard", [["standard"]]]
        ),
        "query_type": st.sampled_from(["standard", "premium"]),
        "paused": st.booleans(),
        "balance": st.integers(min_value=0, max_value=30),
        "overdraft": st.integers(min_value=0, max_value=10),
        "credits": st.integers(min_value=1, max_value=40),
        "prior": st.sampled_from([None, "same", "other"]),
        "unknown_user": st.booleans(),
    }
)


@pytest.fixture
def customer(db):
    user = CustomerFactory(email="report-statement@example.test", org_slug="report-statement")
    organization = user.membership.organization
    key, _ = issue_api_key(organization=organization, created_by=user, name="k")
    stranger = CustomerFactory(email="stranger@example.test", org_slug="stranger")
    other_key, _ = issue_api_key(organization=stranger.membership.organization, created_by=stranger, name="theirs")
    return user, organization, key, other_key


def arrange(state, user, organization, key, other_key) -> services.UsageReport:
    """Put the database in `state` and return the report that meets it."""
    report = services.UsageReport(
        user_id=user.pk,
        api_key_id=key.pk,
        credits=state["credits"],
        query_type=state["query_type"],
        idempotency_key="evt" if state["prior"] else None,
    )
    plan = Plan.objects.create(code="drawn", name="Drawn", allows_all_query_types=True)
    organization.plan = plan
    organization.save(update_fields=["plan"])
    if state["prior"]:
        grant_credits(organization=organization, amount=100, reason="for the first report")
        first = report if state["prior"] == "same" else replace(report, credits=41)
        services.record_usage(report=first, now=NOW - timedelta(minutes=1))
        spend_credits(organization=organization, amount=Account.objects.get(organization=organization).balance)
    if state["balance"]:
        grant_credits(organization=organization, amount=state["balance"], reason="state")
    set_wallet(organization=organization, overdraft_limit=state["overdraft"])
    if state["paused"]:
        pause_credits(organization=organization)
    Plan.objects.filter(pk=plan.pk).update(
        allows_all_query_types=state["allows_all"], allowed_query_types=state["allowed"]
    )
    if state["key"] in ("active", "revoked", "expired"):
        revoked_at = NOW if state["key"] == "revoked" else None
        ApiKey.objects.filter(pk=key.pk).update(
            status=state["key"], expires_at=state["expires_at"], revoked_at=revoked_at
        )
    elif state["key"] == "other_org":
        report = replace(report, api_key_id=other_key.pk)
    else:
        report = replace(report, api_key_id=other_key.pk + 1000)
    if state["unknown_user"]:
        report = replace(report, user_id=user.pk + 1000)
    return report


def answer(record, report, organization):
    """What the report answered (without ids and times that differ by nature) and what it wrote."""
    events, entries = UsageEvent.objects.count(), Entry.objects.count()
    try:
        outcome = record(report, NOW)
        said = ("ok", outcome.remaining_credits, outcome.duplicate)
    except ApplicationError as error:
        said = (type(error).__name__, error.extra)
    wallet = Account.objects.get(organization=organization)
    wrote = (UsageEvent.objects.count() - events, Entry.objects.count() - entries, wallet.balance, wallet.version)
    return said, wrote


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(state=states)
def test_one_statement_answers_and_writes_as_two_queries(customer, state):
    user, organization, key, other_key = customer
    answers = []
    for record in (services._record_usage_in_one_statement, services._record_usage_in_two_queries):
        with rolled_back():
            report = arrange(state, user, organization, key, other_key)
            answers.append(answer(record, report, organization))
            assert verify_ledger().ok
    assert answers[0] == answers[1], state


def test_the_statement_posts_only_what_the_checks_allow_at_the_edges(customer):
    """The SQL checks meet the Python ones exactly at their edges: expiry at the report's time,
    the last credit of the overdraft, a type listed under another letter case."""
    user, organization, key, other_key = customer
    edges = [
        ({"key": "active", "expires_at": NOW}, "ApiKeyExpired"),
        ({"key": "active", "expires_at": NOW + timedelta(microseconds=1)}, "ok"),
        ({"balance": 5, "overdraft": 3, "credits": 8}, "ok"),
        ({"balance": 5, "overdraft": 3, "credits": 9}, "InsufficientCredits"),
        ({"allowed": ["Standard"]}, "QueryTypeNotAllowed"),
        ({"allowed": {"standard": True}}, "QueryTypeNotAllowed"),
    ]
    base = {
        "key": "active",
        "expires_at": None,
        "allows_all": False,
        "allowed": ["standard"],
        "query_type": "standard",
        "paused": False,
        "balance": 10,
        "overdraft": 0,
        "credits": 1,
        "prior": None,
        "unknown_user": False,
    }
    for change, expected in edges:
        with rolled_back():
            report = arrange({**base, **change}, user, organization, key, other_key)
            said, _ = answer(services._record_usage_in_one_statement, report, organization)
        assert said[0] == expected, change
