"""PostgreSQL: the triggers, and real concurrency with threads on separate connections."""

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import IntegrityError, connection, transaction

from credits import services, system_accounts
from credits.errors import IdempotencyConflict, InsufficientCredits, RefundExceedsSpend
from credits.models import Entry, Transaction
from credits.selectors import get_system_account, get_wallet, verify_ledger
from credits.services import Posting
from tests.credits.conftest import fund, wait_for_a_lock_waiter
from tests.factories import OrganizationFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

# Threads each hold a connection; stay well under max_connections on a shared server.
THREADS = 20


def run_in_threads(jobs, workers=THREADS):
    """Run callables concurrently, each thread on its own connection (closed afterwards)."""
    start = threading.Event()

    def wrapped(job):
        try:
            start.wait(timeout=10)
            return job()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(wrapped, job) for job in jobs]
        start.set()
        return [future.result() for future in futures]


def outcome(service, **kwargs):
    try:
        return service(**kwargs)
    except InsufficientCredits:
        return None


# --- triggers ------------------------------------------------------------------------------


def test_the_database_rejects_a_transaction_whose_entries_do_not_sum_to_zero(db):
    organization = OrganizationFactory()
    wallet = get_wallet(organization=organization)
    source = get_system_account(system_accounts.PROMOTION_GRANTS)
    with pytest.raises(IntegrityError, match="sum to 5, not zero"), transaction.atomic():
        txn = Transaction.objects.create(kind="promotion")
        Entry.objects.create(transaction=txn, account=source, amount=-5)
        Entry.objects.create(transaction=txn, account=wallet, amount=10, balance_after=10)
    assert not Transaction.objects.exists()


def test_the_database_accepts_balanced_entries_inserted_one_by_one(db):
    wallet = get_wallet(organization=OrganizationFactory())
    source = get_system_account(system_accounts.PROMOTION_GRANTS)
    with transaction.atomic():
        txn = Transaction.objects.create(kind="promotion")
        Entry.objects.create(transaction=txn, account=source, amount=-5)
        Entry.objects.create(transaction=txn, account=wallet, amount=5, balance_after=5)
    assert Entry.objects.filter(transaction=txn).count() == 2


def test_an_entry_added_after_its_transaction_was_checked_is_checked_again(db):
    # The trigger adds each transaction up once and skips the entries it saw; an entry
    # added after an immediate check has a higher id and is checked with the rest.
    wallet = get_wallet(organization=OrganizationFactory())
    source = get_system_account(system_accounts.PROMOTION_GRANTS)
    with pytest.raises(IntegrityError, match="sum to 7, not zero"), transaction.atomic():
        txn = Transaction.objects.create(kind="promotion")
        Entry.objects.create(transaction=txn, account=source, amount=-5)
        Entry.objects.create(transaction=txn, account=wallet, amount=5, balance_after=5)
        connection.cursor().execute("SET CONSTRAINTS ALL IMMEDIATE")
        connection.cursor().execute("SET CONSTRAINTS ALL DEFERRED")
        Entry.objects.create(transaction=txn, account=wallet, amount=7, balance_after=12)
    assert not Transaction.objects.exists()


def test_interleaved_entries_of_several_transactions_are_each_checked(db):
    wallet = get_wallet(organization=OrganizationFactory())
    source = get_system_account(system_accounts.PROMOTION_GRANTS)
    with pytest.raises(IntegrityError, match="not zero"), transaction.atomic():
        balanced, unbalanced = (
            Transaction.objects.create(kind="promotion"),
            Transaction.objects.create(kind="promotion"),
        )
        Entry.objects.create(transaction=balanced, account=source, amount=-5)
        Entry.objects.create(transaction=unbalanced, account=source, amount=-3)
        Entry.objects.create(transaction=balanced, account=wallet, amount=5, balance_after=5)
        Entry.objects.create(transaction=unbalanced, account=wallet, amount=4, balance_after=9)
    assert not Transaction.objects.exists()


@pytest.mark.parametrize("change", ["update_entry", "delete_entry", "update_transaction", "delete_transaction"])
def test_the_database_refuses_to_change_or_delete_ledger_rows(db, change):
    txn = fund(OrganizationFactory(), 10)
    entry = Entry.objects.filter(transaction=txn).first()
    with pytest.raises(IntegrityError, match="append-only"):
        if change == "update_entry":
            Entry.objects.filter(pk=entry.pk).update(amount=999)
        elif change == "delete_entry":
            Entry.objects.filter(pk=entry.pk).delete()
        elif change == "update_transaction":
            Transaction.objects.filter(pk=txn.pk).update(memo="rewritten")
        else:
            connection.cursor().execute("DELETE FROM credits_transaction WHERE id = %s", [txn.pk])
    assert Entry.objects.get(pk=entry.pk).amount == entry.amount


# --- concurrency ---------------------------------------------------------------------------


def test_fifty_concurrent_spends_never_overdraw_a_wallet(db):
    organization = OrganizationFactory()
    fund(organization, 100)
    amounts = [random.randint(1, 5) for _ in range(50)]
    results = run_in_threads(
        [
            lambda amount=amount: outcome(services.spend_credits, organization=organization, amount=amount)
            for amount in amounts
        ]
    )
    charged = sum(amount for amount, result in zip(amounts, results, strict=True) if result is not None)
    wallet = get_wallet(organization=organization)
    assert wallet.balance == 100 - charged >= 0
    assert sum(amounts) > 100 and any(result is None for result in results)
    successes = [result for result in results if result is not None]
    # every success saw a distinct balance, and the chain of balances is the ledger's
    assert sorted(next(iter(r.balances_after.values())) for r in successes) == sorted(
        Entry.objects.filter(account=wallet)
        .exclude(transaction__kind="purchase")
        .values_list("balance_after", flat=True)
    )
    assert verify_ledger().ok


def test_concurrent_transfers_both_ways_finish_without_deadlock_and_keep_the_total(db):
    organizations = [OrganizationFactory() for _ in range(10)]
    for organization in organizations:
        fund(organization, 1000)
    rng = random.Random(7)
    pairs = [rng.sample(organizations, 2) for _ in range(200)]

    def transfers(chunk):
        done = 0
        for source, target in chunk:
            result = outcome(
                services.transfer_credits,
                from_organization=source,
                to_organization=target,
                amount=rng.randint(1, 300),
                reason="bank test",
            )
            done += result is not None
        return done

    chunks = [pairs[n::10] for n in range(10)]
    done = run_in_threads([lambda chunk=chunk: transfers(chunk) for chunk in chunks], workers=10)
    assert sum(done) > 100
    assert sum(get_wallet(organization=o).balance for o in organizations) == 10_000
    assert all(get_wallet(organization=o).balance >= 0 for o in organizations)
    assert verify_ledger().ok


def test_concurrent_duplicates_of_one_idempotency_key_charge_once(db):
    organization = OrganizationFactory()
    fund(organization, 100)
    results = run_in_threads(
        [
            lambda: services.spend_credits(organization=organization, amount=7, idempotency_key="usage:dup")
            for _ in range(10)
        ],
        workers=10,
    )
    assert len({result.pk for result in results}) == 1
    assert sum(not result.replayed for result in results) == 1
    assert get_wallet(organization=organization).balance == 93


def test_concurrent_refunds_of_one_spend_never_exceed_it(db):
    organization = OrganizationFactory()
    fund(organization, 100)
    spend = services.spend_credits(organization=organization, amount=30)

    def refund():
        try:
            return services.refund_credits(original=spend, amount=4, reason="race")
        except RefundExceedsSpend:
            return None

    results = run_in_threads([refund for _ in range(12)], workers=12)
    assert sum(result is not None for result in results) == 7
    assert get_wallet(organization=organization).balance == 98


@pytest.mark.parametrize("path", ["one_wallet", "transfer"])
def test_a_transaction_that_fails_half_way_leaves_nothing(db, monkeypatch, path):
    organization, other = OrganizationFactory(), OrganizationFactory()
    fund(organization, 50)
    before = (Transaction.objects.count(), Entry.objects.count(), get_wallet(organization=organization).version)

    def broken(*args, **kwargs):
        raise RuntimeError("crash after the entries were written")

    if path == "one_wallet":
        monkeypatch.setattr(services, "_posted", broken)  # runs after the single statement
        with pytest.raises(RuntimeError), transaction.atomic():
            services.spend_credits(organization=organization, amount=20)
    else:
        monkeypatch.setattr(services, "record_changes", broken)  # runs after the entries' bulk insert
        with pytest.raises(RuntimeError):
            services.transfer_credits(from_organization=organization, to_organization=other, amount=20, reason="x")
    wallet = get_wallet(organization=organization)
    assert (Transaction.objects.count(), Entry.objects.count(), wallet.version) == before
    assert (wallet.balance, get_wallet(organization=other).balance) == (50, 0)


@pytest.mark.parametrize("caller_transaction", [False, True])
def test_a_one_wallet_posting_is_one_statement(db, redis_client, caller_transaction):
    """Alone it runs in autocommit, transaction row included; in a caller's transaction it joins it."""
    from django.test.utils import CaptureQueriesContext

    organization = OrganizationFactory()
    services.set_wallet(organization=organization, low_credit_threshold=5)
    fund(organization, 10)
    wallet = get_wallet(organization=organization)
    revenue = get_system_account(system_accounts.USAGE_REVENUE)
    with CaptureQueriesContext(connection) as captured:
        if caller_transaction:
            with transaction.atomic():
                txn = services.post_transaction(kind="usage", postings=[Posting(wallet, -6), Posting(revenue, 6)])
        else:
            txn = services.post_transaction(kind="usage", postings=[Posting(wallet, -6), Posting(revenue, 6)])
    # what follows the posting's statements are the after-commit hooks (Redis push, alert)
    statements = [query["sql"].lstrip() for query in captured.captured_queries]
    statements = [sql for sql in statements if not sql.startswith(("BEGIN", "SAVEPOINT", "RELEASE"))]
    if caller_transaction:
        assert statements[0].startswith('INSERT INTO "credits_transaction"')
        statements = statements[1:]
    assert statements[0].startswith("WITH ok AS")
    assert ("INSERT INTO credits_transaction" in statements[0]) is not caller_transaction
    assert not any("credits_entry" in sql or "credits_transaction" in sql for sql in statements[1:])
    lines = list(
        Entry.objects.filter(transaction=txn).order_by("id").values_list("account_id", "amount", "balance_after")
    )
    assert lines == [(revenue.pk, 6, None), (wallet.pk, -6, 4)]  # the wallet's line after its lock
    assert Transaction.objects.get(pk=txn.pk).kind == "usage"
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.low_credit_alerted, txn.balances_after) == (4, True, {wallet.pk: 4})
    # the after-commit push ran: Redis shows the new balance
    assert redis_client.hgetall(f"creditdesk:org:{organization.pk}")["balance"] == "4"
    assert verify_ledger().ok


def test_a_wallet_emptied_while_a_spend_waits_for_its_lock_refuses_the_spend_and_keeps_nothing(db):
    """The one-statement spend checks the wallet, writes its system line, then waits for the lock."""
    organization = OrganizationFactory()
    fund(organization, 100)
    before = (Transaction.objects.count(), Entry.objects.count())
    waiting = threading.Event()

    def empty_the_wallet():
        try:
            with transaction.atomic():
                services.spend_credits(organization=organization, amount=100)  # holds the wallet's lock
                waiting.set()
                return wait_for_a_lock_waiter("WITH ok AS")
        finally:
            connection.close()

    def spend_ten():
        waiting.wait(timeout=10)
        try:
            services.spend_credits(organization=organization, amount=10)
            return "spent"
        except InsufficientCredits as error:
            return error.extra
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        emptied, spent = pool.submit(empty_the_wallet), pool.submit(spend_ten)
        assert emptied.result() is True  # the spend waited for the lock
        assert spent.result() == {"remainingCredits": 0}
    assert (Transaction.objects.count(), Entry.objects.count()) == (before[0] + 1, before[1] + 2)
    assert get_wallet(organization=organization).balance == 0
    assert verify_ledger().ok


def test_a_replay_in_one_statement_does_not_depend_on_the_balance_today(db):
    organization = OrganizationFactory()
    fund(organization, 10)
    first = services.spend_credits(organization=organization, amount=10, idempotency_key="usage:replay")
    again = services.spend_credits(organization=organization, amount=10, idempotency_key="usage:replay")
    assert (again.pk, again.replayed, again.balances_after) == (first.pk, True, first.balances_after)
    services.pause_credits(organization=organization)
    assert services.spend_credits(organization=organization, amount=10, idempotency_key="usage:replay").replayed
    with pytest.raises(IdempotencyConflict):
        services.spend_credits(organization=organization, amount=9, idempotency_key="usage:replay")
    assert get_wallet(organization=organization).balance == 0
