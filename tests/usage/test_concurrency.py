"""Concurrent reports on PostgreSQL, with real threads and connections: exact money, exact replays."""

import threading
from collections import defaultdict
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.db import connection, transaction
from rest_framework.test import APIClient

from apikeys.services import create_service_account, issue_api_key
from credits.errors import InsufficientCredits
from credits.models import Account
from credits.selectors import verify_ledger
from credits.services import grant_credits, spend_credits
from tests.credits.conftest import wait_for_a_lock_waiter
from tests.factories import CustomerFactory
from tests.usage.conftest import ledger_rows
from usage.models import UsageEvent
from usage.services import UsageReport, record_usage

THREADS = 8


def _run_in_threads(jobs_per_thread, token):
    responses = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(jobs_per_thread))

    def work(jobs):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        barrier.wait()
        try:
            for path, body in jobs:
                response = client.post(path, body, format="json")
                with lock:
                    responses.append((body, response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(jobs,)) for jobs in jobs_per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


@pytest.fixture
def hot_wallet(transactional_db):
    user = CustomerFactory(email="hot@concurrency.test", org_slug="hot")
    organization = user.membership.organization
    grant_credits(organization=organization, amount=1000, reason="test")
    key, _ = issue_api_key(organization=organization, created_by=user, name="k")
    _, token = create_service_account(name="query-api-concurrency")
    return user, organization, key, token


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_reports_with_duplicates_charge_exactly_once(hot_wallet, redis_client):
    user, organization, key, token = hot_wallet
    # 60 distinct events, each sent by two threads (the duplicates race the originals);
    # together they ask for more than the wallet holds, so some are refused with 402.
    events = [
        {"userId": user.pk, "apiKeyId": key.pk, "creditsUsed": n % 9 + 15, "queryType": "standard", "eventId": f"c{n}"}
        for n in range(60)
    ]
    jobs = [[] for _ in range(THREADS)]
    for n, body in enumerate(events):
        jobs[n % THREADS].append(("/api/usage/report", body))
        jobs[(n + 3) % THREADS].append(("/api/usage/report", body))

    responses = _run_in_threads(jobs, token)

    statuses = defaultdict(list)
    for body, status, answer in responses:
        statuses[body["eventId"]].append((status, answer))
    assert all(status in (200, 201, 402) for body, status, _ in responses)
    for outcomes in statuses.values():
        created = [answer for status, answer in outcomes if status == 201]
        replays = [answer for status, answer in outcomes if status == 200]
        assert len(created) <= 1
        for replay in replays:
            assert created, "a replay without an original"
            assert replay == {**created[0], "duplicate": True}
    created_answers = [(body, answer) for body, status, answer in responses if status == 201]
    charged = sum(body["creditsUsed"] for body, _ in created_answers)
    wallet = Account.objects.get(organization=organization)
    assert charged == 1000 - wallet.balance
    assert UsageEvent.objects.count() == len(created_answers)
    assert min(answer["remainingCredits"] for _, answer in created_answers) == wallet.balance
    check = verify_ledger()
    assert check.ok, check.violations
    stored = redis_client.hgetall(f"{settings.REDIS_KEY_PREFIX}:org:{organization.pk}")
    assert stored["balance"] == str(wallet.balance)
    assert stored["version"] == str(wallet.version)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("batch_credits", [3, 15], ids=["enough credits", "the wallet runs dry"])
def test_concurrent_batches_and_singles_on_one_wallet_stay_exact(hot_wallet, redis_client, batch_credits):
    """Batches decided on a balance that others move; with 15 credits they ask for more than
    the wallet holds, so refusals make batches post again with their locks first."""
    user, organization, key, token = hot_wallet

    def event(event_id, credits):
        body = {"userId": user.pk, "apiKeyId": key.pk, "creditsUsed": credits, "queryType": "standard"}
        return {**body, "eventId": event_id}

    jobs = []
    for thread in range(THREADS):
        if thread % 2:
            batch = {"events": [event(f"b{thread}-{n}", batch_credits) for n in range(20)] + [event("shared", 7)]}
            jobs.append([("/api/usage/report/batch", batch)])
        else:
            jobs.append(
                [("/api/usage/report", event(f"s{thread}-{n}", 5)) for n in range(10)]
                + [("/api/usage/report", event("shared", 7))]
            )

    responses = _run_in_threads(jobs, token)

    recorded = 0
    shared_recorded = 0
    refused = 0
    for body, status, answer in responses:
        assert status in (200, 201, 402), answer
        if "events" in body:
            for sent, result in zip(body["events"], answer["results"], strict=True):
                assert result["remainingCredits"] >= 0
                if result["status"] == "recorded":
                    recorded += sent["creditsUsed"]
                    shared_recorded += sent["eventId"] == "shared"
                refused += result.get("error") == "insufficient_credits"
        elif status == 201:
            recorded += body["creditsUsed"]
            shared_recorded += body["eventId"] == "shared"
        refused += status == 402
    wallet = Account.objects.get(organization=organization)
    if batch_credits == 3:
        assert (shared_recorded, refused) == (1, 0)
    else:
        assert shared_recorded <= 1 and refused > 0
    assert wallet.balance >= 0
    assert recorded == 1000 - wallet.balance
    assert verify_ledger().ok
    stored = redis_client.hgetall(f"{settings.REDIS_KEY_PREFIX}:org:{organization.pk}")
    assert (stored["balance"], stored["version"]) == (str(wallet.balance), str(wallet.version))


@contextmanager
def wallet_emptied_while_the_report_waits(organization):
    """Another connection spends the wallet's 1,000 credits and holds its lock until the block's
    report statement waits on it; yields `outcome`, whose "waited" says whether it did."""
    holding = threading.Event()
    outcome = {}

    def empty_the_wallet():
        try:
            with transaction.atomic():
                spend_credits(organization=organization, amount=1000)  # holds the wallet's lock
                holding.set()
                outcome["waited"] = wait_for_a_lock_waiter("WITH c AS")  # the report statement
        finally:
            connection.close()

    emptier = threading.Thread(target=empty_the_wallet)
    emptier.start()
    holding.wait(timeout=10)
    try:
        yield outcome
    finally:
        emptier.join()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_report_that_waited_for_a_wallet_emptied_meanwhile_is_a_402_and_leaves_nothing(hot_wallet):
    """The report's statement checks the wallet, writes before the lock, then finds it emptied;
    decided again, the report is refused."""
    user, organization, key, token = hot_wallet
    before = ledger_rows()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    body = {"userId": user.pk, "apiKeyId": key.pk, "creditsUsed": 5, "queryType": "standard", "eventId": "late"}
    with wallet_emptied_while_the_report_waits(organization) as outcome:
        response = client.post("/api/usage/report", body, format="json")

    assert outcome["waited"] is True
    assert response.status_code == 402
    assert (response.json()["error"], response.json()["remainingCredits"]) == ("insufficient_credits", 0)
    assert ledger_rows() == (before[0] + 1, before[1] + 2, before[2])
    assert verify_ledger().ok
    # the refusal was not remembered: a retry after a top-up is recorded
    grant_credits(organization=organization, amount=10, reason="top-up")
    assert client.post("/api/usage/report", body, format="json").status_code == 201


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_in_a_callers_transaction_a_report_refused_after_waiting_leaves_it_committable(hot_wallet):
    """Inside a caller's transaction the zero-sum check waits for the caller's commit: the report's
    savepoint must drop what it wrote before the lock, or that commit would fail."""
    user, organization, key, _ = hot_wallet
    before = ledger_rows()
    report = UsageReport(user_id=user.pk, api_key_id=key.pk, credits=5, query_type="standard", idempotency_key="tx")
    # the caller's transaction (inner), committed after the refusal
    with (
        wallet_emptied_while_the_report_waits(organization) as outcome,
        transaction.atomic(),
        pytest.raises(InsufficientCredits) as refused,
    ):
        record_usage(report=report)

    assert outcome["waited"] is True
    assert refused.value.extra == {"remainingCredits": 0}
    assert ledger_rows() == (before[0] + 1, before[1] + 2, before[2])
    assert verify_ledger().ok
