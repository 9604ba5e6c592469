"""Batches on PostgreSQL: decided on the wallets as read, posted with the locks taken last.

Each test changes the wallet between the batch's read and its statement (what a concurrent
report or operator does) and checks the answers, the ledger and which path posted.
"""

import pytest

from credits.models import Account
from credits.selectors import verify_ledger
from credits.services import grant_credits, pause_credits, set_wallet, spend_credits
from tests.usage.conftest import ledger_rows
from usage import services
from usage.models import UsageEvent

pytestmark = pytest.mark.postgres


@pytest.fixture
def post_batch(service_client):
    def post(events):
        response = service_client.post("/api/usage/report/batch", {"events": events}, format="json")
        assert response.status_code == 200, response.json()
        return response.json()

    return post


@pytest.fixture
def event(report_body):
    def build(event_id, credits):
        return report_body(eventId=event_id, creditsUsed=credits)

    return build


@pytest.fixture
def after_the_read(monkeypatch):
    """Run `change` right after the batch reads the wallets; record whether it then locked first."""
    paths = []

    def install(change):
        real_read, real_lock = services.read_wallets, services.lock_wallets

        def read_then_change(wallet_ids):
            states = real_read(wallet_ids)
            change()
            return states

        def lock(wallet_ids):
            paths.append("locks first")
            return real_lock(wallet_ids)

        monkeypatch.setattr(services, "read_wallets", read_then_change)
        monkeypatch.setattr(services, "lock_wallets", lock)
        return paths

    return install


def wallet_of(organization) -> Account:
    return Account.objects.get(organization=organization)


def test_a_balance_that_moved_after_the_read_gives_the_locked_balances(post_batch, event, funded, after_the_read):
    paths = after_the_read(lambda: spend_credits(organization=funded, amount=30))
    version = wallet_of(funded).version

    body = post_batch([event("a", 10), event("a", 10), event("b", 5)])

    assert paths == []  # posted lock-last: the spend left enough for both events
    assert [(r["status"], r["remainingCredits"]) for r in body["results"]] == [
        ("recorded", 60),
        ("duplicate", 60),
        ("recorded", 55),
    ]
    wallet = wallet_of(funded)
    assert (wallet.balance, wallet.version) == (55, version + 3)
    assert list(UsageEvent.objects.order_by("id").values_list("remaining_credits", flat=True)) == [60, 55]
    # one entry for the batch: both events' credits, the balance after the last of them
    (batch,) = {event.transaction for event in UsageEvent.objects.all()}
    assert list(batch.entries.filter(account=wallet).values_list("amount", "balance_after")) == [(-15, 55)]
    assert verify_ledger().ok


def test_a_wallet_emptied_after_the_read_is_posted_again_with_its_lock_first(post_batch, event, funded, after_the_read):
    paths = after_the_read(lambda: spend_credits(organization=funded, amount=95))
    before = ledger_rows()

    body = post_batch([event("a", 10), event("b", 5)])

    assert paths == ["locks first"]
    assert [(r["status"], r.get("error"), r["remainingCredits"]) for r in body["results"]] == [
        ("rejected", "insufficient_credits", 5),
        ("recorded", None, 0),
    ]
    # the spend, then one transaction, two entries and one event: nothing of the first try
    assert ledger_rows() == (before[0] + 2, before[1] + 4, before[2] + 1)
    assert verify_ledger().ok


def test_a_refusal_decided_on_a_balance_that_grew_is_decided_again(post_batch, event, funded, after_the_read):
    paths = after_the_read(lambda: grant_credits(organization=funded, amount=100, reason="top-up"))

    body = post_batch([event("big", 150), event("small", 1)])

    assert paths == ["locks first"]
    assert [(r["status"], r["remainingCredits"]) for r in body["results"]] == [("recorded", 50), ("recorded", 49)]
    assert wallet_of(funded).balance == 49
    assert verify_ledger().ok


def test_a_wallet_paused_after_the_read_refuses_the_batch(post_batch, event, funded, after_the_read):
    paths = after_the_read(lambda: pause_credits(organization=funded))
    before = ledger_rows()

    body = post_batch([event("a", 10)])

    assert paths == ["locks first"]
    assert [(r["status"], r["error"]) for r in body["results"]] == [("rejected", "credits_paused")]
    assert ledger_rows() == before
    assert wallet_of(funded).balance == 100


def test_the_alert_follows_the_locked_balances(
    post_batch, event, funded, after_the_read, django_capture_on_commit_callbacks, mailoutbox
):
    set_wallet(organization=funded, low_credit_threshold=50)
    # As read (100), the batch would end at 60 and cross nothing; as locked (70) it crosses.
    paths = after_the_read(lambda: spend_credits(organization=funded, amount=30))

    with django_capture_on_commit_callbacks(execute=True):
        body = post_batch([event("a", 20), event("b", 20)])

    assert paths == []
    assert [r["remainingCredits"] for r in body["results"]] == [50, 30]
    wallet = wallet_of(funded)
    assert (wallet.balance, wallet.low_credit_alerted) == (30, True)
    assert len(mailoutbox) == 1


def test_a_batch_of_refusals_only_writes_nothing_and_locks_nothing(post_batch, event, funded, after_the_read):
    paths = after_the_read(lambda: None)
    before = ledger_rows()

    body = post_batch([event("a", 500), event("b", 101)])

    assert paths == []
    assert [r["error"] for r in body["results"]] == ["insufficient_credits", "insufficient_credits"]
    assert ledger_rows() == before
