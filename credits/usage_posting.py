"""The ledger side of usage reports: the measured hot path of the whole service.

Every usage report charges the organization's wallet and credits the usage-revenue system
account with one `usage` Transaction, and records the UsageEvent that points at it, in one
database transaction. This module is the only code that does so; it keeps every invariant
of credits.services.post_transaction:

- the entries of the transaction sum to zero (the PostgreSQL deferred trigger checks it
  at commit) and the wallet entry carries `balance_after`, the usage-revenue entry NULL
  (system accounts keep no running balance, see credits.models);
- a debit only happens while the wallet is active and stays within `-overdraft_limit`,
  checked and written in one conditional UPDATE, so there is no read-then-write race;
- the wallet's `version` grows by one per posting, `low_credit_alerted` becomes "below the
  threshold now", and a posting that crosses the threshold queues one alert after commit
  (credits.services.crossed_low_credit_threshold / schedule_low_credit_alert);
- an outbox row for the organization is upserted in the same transaction and the Redis
  push runs after commit (core.outbox).

`post_usage` posts one report. On PostgreSQL it is a single statement (see `_POST_USAGE_SQL`);
elsewhere it goes through `post_transaction` and the ORM (same rows, same results; the
tests compare the two). The same statement's posting part (`USAGE_POSTING_CTES`, run by
`run_usage_statement`) also ends the statement in which usage.services reads a report's
context and posts it. A batch is one `usage` Transaction for all its events: each wallet
debited once by the sum of its events (its entry's balance_after is its balance after its
last event), the usage-revenue account credited once by the total, every event linked to
it with its own balance after it. A batch takes one lock per wallet for the whole batch: on
PostgreSQL `read_wallets` and `post_usage_batch_lock_last` decide it on the wallets as
last committed and write all its rows in one statement that locks the wallets last;
`lock_wallets` and `post_usage_batch` lock them first (elsewhere, and on PostgreSQL when a
wallet changed so that the decisions may not hold).
"""

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.db import fetchall_prepared, fetchone_prepared, pg_array
from core.outbox import push_after_commit, record_changes
from credits import system_accounts
from credits.errors import CreditsPaused, InsufficientCredits
from credits.models import Account, Entry, Transaction
from credits.selectors import get_system_account
from credits.services import (
    Posting,
    crossed_low_credit_threshold,
    is_unbalanced_commit,
    post_transaction,
    schedule_low_credit_alert,
)

if TYPE_CHECKING:
    from usage.models import UsageEvent


@dataclass(frozen=True)
class UsageCharge:
    """One report to post: who, how much, and the idempotency key and payload fingerprint."""

    organization_id: int
    wallet_id: int
    user_id: int
    api_key_id: int
    credits: int
    query_type: str
    metadata: dict[str, Any] | None
    idempotency_key: str | None
    fingerprint: str
    occurred_at: datetime


@dataclass(frozen=True)
class PostedUsage:
    usage_id: int | None
    transaction_id: uuid.UUID
    remaining_credits: int
    recorded_at: datetime


class UsageKeyTaken(Exception):
    """The organization already has a live usage event with this idempotency key (a duplicate)."""


# One round trip does the whole posting, and it runs in autocommit: the statement is the
# transaction, so the wallet's row lock is taken inside it and released by the commit that
# follows it on the server, never held across a round trip to the application. The lock
# is taken last (as in credits.services._SINGLE_WALLET_SQL):
#
#   ok the statement's own first CTE: the wallet's id when it can pay, as last committed
#      (no lock); otherwise nothing is written and the wallet is not locked (the caller
#      raises 402/403). _POST_USAGE_SQL checks the wallet alone; the report statement of
#      usage.services checks the report's whole context first, in the same round trip.
#   t  the usage Transaction and r its usage-revenue entry (balance_after NULL), written
#      before the lock (the UPDATE's EXISTS over r makes PostgreSQL run them first).
#   w  locks the wallet row and debits it only if it is still active and stays within its
#      overdraft limit; version + 1; low_credit_alerted := below the threshold now. When a
#      concurrent report emptied it after `ok`, w matches nothing, r is left unbalanced and
#      the zero-sum trigger refuses the commit: nothing stays, and the caller reports the
#      refusal (credits.services.is_unbalanced_commit).
#   e  the wallet's entry with balance_after, after the lock, so a wallet's entry ids
#      follow its balances;
#   u  the UsageEvent with the balance after it (for exact replays). A live duplicate key
#      violates usage_event_idempotency_unique and the whole statement rolls back; a
#      concurrent duplicate waits for the first (row lock, then the unique index).
#   o  the outbox upsert for the Redis push (clock_timestamp: a stamp per commit).
#
# Measured with benchmarks/usage_benchmark.py on the 2-core dev machine (gunicorn 4x4,
# PostgreSQL 15, Redis, 16 clients, 2026-11-21): with this statement (then with the lock
# first) a hot wallet ran at 0.87-1.12 x the spread rate (target 0.8); the ORM path
# (USAGE_POSTING_PATH=orm: post_transaction plus the event insert in transaction.atomic(),
# whose lock is held across client round trips) at 0.75-0.81 x. Spread throughput was
# within that machine's noise for both (Python CPU bound). It runs as a prepared statement
# (core.db.fetchone_prepared): planning it cost more than running it.
USAGE_POSTING_CTES = """t AS (
    INSERT INTO credits_transaction (id, kind, idempotency_key, fingerprint, memo, metadata, created_at)
    SELECT %(transaction_id)s, 'usage', NULL, '', %(memo)s, '{}'::jsonb, %(now)s FROM ok
    RETURNING 1
), r AS (
    INSERT INTO credits_entry (transaction_id, account_id, amount, balance_after, created_at)
    SELECT %(transaction_id)s, %(revenue_id)s, %(credits)s, NULL, %(now)s FROM t
    RETURNING 1
), w AS (
    UPDATE credits_account
       SET balance = balance - %(credits)s,
           version = version + 1,
           updated_at = %(now)s,
           low_credit_alerted = (low_credit_threshold IS NOT NULL AND balance - %(credits)s < low_credit_threshold)
     WHERE id = (SELECT id FROM ok) AND kind = 'customer' AND status = 'active'
       AND balance - %(credits)s >= -overdraft_limit AND EXISTS (SELECT 1 FROM r)
    RETURNING id, balance, version, organization_id, low_credit_threshold
), e AS (
    INSERT INTO credits_entry (transaction_id, account_id, amount, balance_after, created_at)
    SELECT %(transaction_id)s, w.id, -%(credits)s, w.balance, %(now)s FROM w
), u AS (
    INSERT INTO usage_usageevent (
        organization_id, user_id, api_key_id, credits, query_type, metadata, idempotency_key,
        idempotency_key_active, fingerprint, occurred_at, recorded_at, transaction_id, remaining_credits
    )
    SELECT w.organization_id, %(user_id)s, %(api_key_id)s, %(credits)s, %(query_type)s, %(metadata)s::jsonb,
           %(idempotency_key)s, TRUE, %(fingerprint)s, %(occurred_at)s, %(now)s, %(transaction_id)s, w.balance
      FROM w
    RETURNING id
), o AS (
    INSERT INTO core_outboxitem (topic, object_id, changed_at)
    SELECT 'org', w.organization_id, clock_timestamp() FROM w
    ON CONFLICT (topic, object_id) DO UPDATE SET changed_at = EXCLUDED.changed_at, pushed_at = NULL
)"""
# The posting's own columns, last in every one-statement usage posting's row.
USAGE_POSTED_COLUMNS = "w.balance, w.version, w.organization_id, w.low_credit_threshold, u.id"

_POST_USAGE_SQL = f"""
WITH ok AS (
    SELECT id FROM credits_account
     WHERE id = %(wallet_id)s AND kind = 'customer' AND status = 'active'
       AND balance - %(credits)s >= -overdraft_limit
), {USAGE_POSTING_CTES}
SELECT {USAGE_POSTED_COLUMNS} FROM w CROSS JOIN u
"""


def _memo(query_type: str) -> str:
    return f"usage: {query_type}"


def post_usage(charge: UsageCharge, *, now: datetime | None = None, vendor: str | None = None) -> PostedUsage:
    """Charge one usage report and record its UsageEvent, in one database transaction.

    Raises CreditsPaused or InsufficientCredits (with `remainingCredits`) and writes
    nothing when the wallet cannot pay; raises UsageKeyTaken when a live event of the
    organization already holds `charge.idempotency_key`. `vendor="orm"` forces the
    portable path (the tests compare both).
    """
    now = now or timezone.now()
    if getattr(settings, "USAGE_POSTING_PATH", "auto") == "orm":
        vendor = vendor or "orm"
    if (vendor or connection.vendor) == "postgresql":
        return _post_usage_sql(charge, now)
    return _post_usage_orm(charge, now)


def usage_posting_params(
    *,
    credits: int,
    query_type: str,
    user_id: int,
    api_key_id: int,
    metadata: dict[str, Any] | None,
    idempotency_key: str | None,
    fingerprint: str,
    occurred_at: datetime,
    now: datetime,
) -> dict[str, Any]:
    """The parameters of USAGE_POSTING_CTES, with a new transaction id."""
    return {
        "credits": credits,
        "now": now,
        "transaction_id": uuid.uuid4(),
        "memo": _memo(query_type),
        "revenue_id": get_system_account(system_accounts.USAGE_REVENUE).pk,
        "user_id": user_id,
        "api_key_id": api_key_id,
        "query_type": query_type,
        "metadata": None if metadata is None else json.dumps(metadata, ensure_ascii=False),
        "idempotency_key": idempotency_key,
        "fingerprint": fingerprint,
        "occurred_at": occurred_at,
    }


class UsageWalletChanged(Exception):
    """A concurrent posting emptied or paused the wallet between the statement's check and its lock.

    The zero-sum trigger refused the commit, so nothing was written."""


def run_usage_statement(sql: str, params: dict[str, Any]) -> tuple | None:
    """Run a one-statement usage posting (USAGE_POSTING_CTES; its row ends with
    USAGE_POSTED_COLUMNS, NULL when it posted nothing) and return its row, if any.

    Nothing is written unless the row's last column (the usage event's id) is set. Raises
    UsageKeyTaken when a live event of the organization holds the idempotency key, and
    UsageWalletChanged; nothing is written then either.
    """
    try:
        if not connection.in_atomic_block:
            return fetchone_prepared(sql, params)
        # Inside someone else's transaction (seed_demo, tests): a savepoint keeps the
        # caller's transaction usable when the statement fails on a duplicate key, and is
        # rolled back to drop what it wrote before the lock when the wallet refuses.
        with transaction.atomic():
            row = fetchone_prepared(sql, params)
            if row is None or row[-1] is None:
                transaction.set_rollback(True)
        return row
    except IntegrityError as exc:
        if params["idempotency_key"] and "usage_event_idempotency_unique" in str(exc):
            raise UsageKeyTaken() from exc
        if is_unbalanced_commit(exc):
            raise UsageWalletChanged() from exc
        raise


def posted_usage(row: tuple, params: dict[str, Any]) -> PostedUsage:
    """What a one-statement posting that posted wrote (its row ends with USAGE_POSTED_COLUMNS);
    registers what post_transaction does after commit: the Redis push, one alert per crossing."""
    balance, version, organization_id, threshold, usage_id = row[-5:]
    push_after_commit("org", [organization_id])
    if crossed_low_credit_threshold(previous_balance=balance + params["credits"], balance=balance, threshold=threshold):
        schedule_low_credit_alert(organization_id=organization_id, version=version)
    return PostedUsage(usage_id, params["transaction_id"], balance, params["now"])


def _post_usage_sql(charge: UsageCharge, now: datetime) -> PostedUsage:
    params = usage_posting_params(
        credits=charge.credits,
        query_type=charge.query_type,
        user_id=charge.user_id,
        api_key_id=charge.api_key_id,
        metadata=charge.metadata,
        idempotency_key=charge.idempotency_key,
        fingerprint=charge.fingerprint,
        occurred_at=charge.occurred_at,
        now=now,
    )
    params["wallet_id"] = charge.wallet_id
    try:
        row = run_usage_statement(_POST_USAGE_SQL, params)
    except UsageWalletChanged:
        row = None
    if row is None:
        raise_refusal(charge.wallet_id)
    return posted_usage(row, params)


def raise_refusal(wallet_id: int) -> NoReturn:
    """The wallet refused a debit: CreditsPaused or InsufficientCredits, with its balance now."""
    wallet = Account.objects.filter(pk=wallet_id).values("status", "balance").first()
    balance = wallet["balance"] if wallet else 0
    if wallet is not None and wallet["status"] == Account.Status.PAUSED:
        raise CreditsPaused(remainingCredits=balance)
    raise InsufficientCredits(remainingCredits=balance)


def _post_usage_orm(charge: UsageCharge, now: datetime) -> PostedUsage:
    wallet = Account(pk=charge.wallet_id, kind=Account.Kind.CUSTOMER, organization_id=charge.organization_id)
    revenue = get_system_account(system_accounts.USAGE_REVENUE)
    try:
        with transaction.atomic():
            txn = post_transaction(
                kind=Transaction.Kind.USAGE,
                postings=[Posting(wallet, -charge.credits), Posting(revenue, charge.credits)],
                memo=_memo(charge.query_type),
            )
            remaining = txn.balances_after[charge.wallet_id]
            event = _usage_event(charge, txn=txn, remaining_credits=remaining, recorded_at=now)
            event.save(force_insert=True)
    except IntegrityError as exc:
        if charge.idempotency_key and _key_is_taken(charge):
            raise UsageKeyTaken() from exc
        raise
    return PostedUsage(event.pk, txn.pk, remaining, now)


def _key_is_taken(charge: UsageCharge) -> bool:
    from usage.models import UsageEvent

    return UsageEvent.objects.filter(
        organization_id=charge.organization_id, idempotency_key=charge.idempotency_key, idempotency_key_active=True
    ).exists()


# --- Batches ------------------------------------------------------------------------------


@dataclass
class WalletState:
    """A wallet locked for a batch, with its balance as the batch's postings move it."""

    id: int
    organization_id: int
    status: str
    balance: int
    overdraft_limit: int
    low_credit_threshold: int | None
    version: int
    postings: int = 0
    alert_version: int | None = None
    # A refusal in the batch depended on the wallet's state (paused, or its balance): a
    # lock-last batch then needs that state unchanged under the lock.
    refused: bool = False

    @property
    def below_threshold(self) -> bool:
        return self.low_credit_threshold is not None and self.balance < self.low_credit_threshold

    def refusal(self, credits: int) -> type[CreditsPaused] | type[InsufficientCredits] | None:
        """Why a debit of `credits` cannot be posted now (the rules of the conditional UPDATE), or None."""
        if self.status != Account.Status.ACTIVE:
            return CreditsPaused
        if self.balance - credits < -self.overdraft_limit:
            return InsufficientCredits
        return None

    def debit(self, credits: int) -> int:
        previous = self.balance
        self.balance -= credits
        self.version += 1
        self.postings += 1
        if self.alert_version is None and crossed_low_credit_threshold(
            previous_balance=previous, balance=self.balance, threshold=self.low_credit_threshold
        ):
            self.alert_version = self.version
        return self.balance


_READ_WALLETS_SQL = """
SELECT id, organization_id, status, balance, overdraft_limit, low_credit_threshold, version
  FROM credits_account
 WHERE id = ANY(%s::bigint[]) AND kind = 'customer'
"""
_LOCK_WALLETS_SQL = _READ_WALLETS_SQL + " ORDER BY id FOR UPDATE\n"


def lock_wallets(wallet_ids: Iterable[int]) -> dict[int, WalletState]:
    """Lock the wallets in primary-key order (no deadlocks) for a batch; call inside a transaction."""
    ids = sorted(set(wallet_ids))
    if connection.vendor == "postgresql":
        rows = fetchall_prepared(_LOCK_WALLETS_SQL, [pg_array(ids)]) if ids else []
    else:
        rows = (
            Account.objects.select_for_update()
            .filter(pk__in=ids, kind=Account.Kind.CUSTOMER)
            .order_by("pk")
            .values_list(
                "pk", "organization_id", "status", "balance", "overdraft_limit", "low_credit_threshold", "version"
            )
        )
    return {row[0]: WalletState(*row) for row in rows}


def read_wallets(wallet_ids: Iterable[int]) -> dict[int, WalletState]:
    """The wallets as last committed, without a lock (PostgreSQL): what a lock-last batch decides on."""
    ids = sorted(set(wallet_ids))
    rows = fetchall_prepared(_READ_WALLETS_SQL, [pg_array(ids)]) if ids else []
    return {row[0]: WalletState(*row) for row in rows}


@dataclass(frozen=True)
class BatchPosting:
    """One event of a batch that the wallet can pay: its charge and the balance after it."""

    charge: UsageCharge
    remaining_credits: int


def post_usage_batch(
    postings: Sequence[BatchPosting], wallets: dict[int, WalletState], *, now: datetime
) -> list[PostedUsage]:
    """Write the postings of a batch whose wallets `lock_wallets` locked and `WalletState.debit` moved.

    One `usage` transaction for the whole batch (see the module's docstring). On PostgreSQL
    one prepared statement (_POST_BATCH_SQL); elsewhere the transaction, bulk inserts of its
    entries and the usage events, one UPDATE for the wallets and one outbox upsert,
    whatever the batch size. Must run in the transaction that locked the wallets.
    """
    from usage.models import UsageEvent

    if not postings:
        return []
    revenue_id = get_system_account(system_accounts.USAGE_REVENUE).pk
    moved = [state for state in wallets.values() if state.postings]
    debits = _debits(postings)
    if connection.vendor == "postgresql":
        posted = _post_batch_sql(postings, moved, debits, revenue_id, now)
        after_usage_batch(moved)
        return posted
    txn = Transaction.objects.create(id=uuid.uuid4(), kind=Transaction.Kind.USAGE, memo=_BATCH_MEMO, created_at=now)
    entries = [
        Entry(
            transaction=txn, account_id=state.id, amount=-debits[state.id], balance_after=state.balance, created_at=now
        )
        for state in sorted(moved, key=lambda state: state.id)
    ]
    entries.append(Entry(transaction=txn, account_id=revenue_id, amount=sum(debits.values()), created_at=now))
    Entry.objects.bulk_create(entries)
    events = UsageEvent.objects.bulk_create(
        [_usage_event(p.charge, txn=txn, remaining_credits=p.remaining_credits, recorded_at=now) for p in postings]
    )
    _update_wallets(moved, now)
    record_changes("org", [state.organization_id for state in moved])
    _schedule_batch_alerts(moved)
    return [
        PostedUsage(event.pk, txn.pk, posting.remaining_credits, now)
        for event, posting in zip(events, postings, strict=True)
    ]


def _debits(postings: Sequence[BatchPosting]) -> dict[int, int]:
    """What a batch takes from each wallet: {wallet id: the sum of its events' credits}."""
    debits: dict[int, int] = {}
    for posting in postings:
        debits[posting.charge.wallet_id] = debits.get(posting.charge.wallet_id, 0) + posting.charge.credits
    return debits


# Each organization sees the memo next to its own share, so it counts nothing.
_BATCH_MEMO = "usage: reports in a batch"


def _schedule_batch_alerts(moved: Sequence[WalletState]) -> None:
    for state in moved:
        if state.alert_version is not None:
            schedule_low_credit_alert(organization_id=state.organization_id, version=state.alert_version)


# The batch's transaction, inserted first by both batch statements.
_INSERT_BATCH_TRANSACTION = """    INSERT INTO credits_transaction
        (id, kind, idempotency_key, fingerprint, memo, metadata, created_at)
    VALUES (%(transaction_id)s, 'usage', NULL, '', %(memo)s, '{}'::jsonb, %(now)s)
    RETURNING 1"""
# A batch's usage events, inserted by both batch statements from rows (`ev` or `ln`) that
# carry the event's columns, `remaining` (the balance after it) and `n` (its place): their
# ids come from the sequence in that order.
_INSERT_BATCH_EVENTS = """    INSERT INTO usage_usageevent (
        organization_id, user_id, api_key_id, credits, query_type, metadata, idempotency_key,
        idempotency_key_active, fingerprint, occurred_at, recorded_at, transaction_id, remaining_credits
    )
    SELECT organization_id, user_id, api_key_id, credits, query_type, metadata, idempotency_key,
           TRUE, fingerprint, occurred_at, %(now)s, %(transaction_id)s, remaining
      FROM {rows} ORDER BY n"""


# A whole batch in one statement (PostgreSQL), run while the transaction holds the wallets'
# locks: the events and the wallets' new states come in as two JSON documents (one prepared
# statement whatever the batch size), and the transaction, its entries (one per wallet, in
# wallet order, and the usage-revenue line) and the events are inserted, the wallets set to
# what the batch computed, and their outbox rows upserted. Building Django model instances for
# bulk_create cost more CPU than the rest of a batch of 100 together, and psycopg's
# element-by-element dumping of a dozen arrays a tenth of a batch's Python time; the JSON
# encoder does the same in a fraction of it, all of it under the locks.
_POST_BATCH_SQL = (
    """
WITH ev AS (
    SELECT *
      FROM ROWS FROM (json_to_recordset(%(events)s::json) AS (
               wallet_id bigint, organization_id bigint, user_id bigint, api_key_id bigint,
               credits bigint, query_type text, metadata jsonb, idempotency_key text, fingerprint text,
               occurred_at timestamptz, remaining bigint))
           WITH ORDINALITY AS e (wallet_id, organization_id, user_id, api_key_id, credits, query_type,
                                 metadata, idempotency_key, fingerprint, occurred_at, remaining, n)
), v AS (
    SELECT *
      FROM json_to_recordset(%(wallets)s::json)
           AS v (id bigint, debit bigint, balance bigint, version bigint, alerted boolean)
), t AS (
"""
    + _INSERT_BATCH_TRANSACTION
    + """
), e AS (
    INSERT INTO credits_entry (transaction_id, account_id, amount, balance_after, created_at)
    SELECT %(transaction_id)s, account_id, amount, balance_after, %(now)s
      FROM (SELECT 0 AS side, id AS account_id, -debit AS amount, balance AS balance_after FROM v
            UNION ALL
            SELECT 1, %(revenue_id)s::bigint, sum(debit), NULL FROM v) AS line
     WHERE (SELECT count(*) FROM t) > 0
     ORDER BY side, account_id
), u AS (
"""
    + _INSERT_BATCH_EVENTS.format(rows="ev")
    + """
    RETURNING id
), w AS (
    UPDATE credits_account AS a
       SET balance = v.balance, version = v.version, low_credit_alerted = v.alerted, updated_at = %(now)s
      FROM v
     WHERE a.id = v.id
), o AS (
    INSERT INTO core_outboxitem (topic, object_id, changed_at)
    SELECT 'org', org_id, clock_timestamp() FROM unnest(%(organization_ids)s::bigint[]) AS org_id
    ON CONFLICT (topic, object_id) DO UPDATE SET changed_at = EXCLUDED.changed_at, pushed_at = NULL
)
SELECT id FROM u ORDER BY id
"""
)


def _event_row(charge: UsageCharge) -> dict[str, Any]:
    """A batch event as the statements' json_to_recordset reads it."""
    return {
        "wallet_id": charge.wallet_id,
        "organization_id": charge.organization_id,
        "user_id": charge.user_id,
        "api_key_id": charge.api_key_id,
        "credits": charge.credits,
        "query_type": charge.query_type,
        "metadata": charge.metadata,
        "idempotency_key": charge.idempotency_key,
        "fingerprint": charge.fingerprint,
        "occurred_at": charge.occurred_at.isoformat(),
    }


def _post_batch_sql(
    postings: Sequence[BatchPosting],
    moved: Sequence[WalletState],
    debits: dict[int, int],
    revenue_id: int,
    now: datetime,
) -> list[PostedUsage]:
    transaction_id = uuid.uuid4()
    events = [{**_event_row(posting.charge), "remaining": posting.remaining_credits} for posting in postings]
    wallets = [
        {
            "id": state.id,
            "debit": debits[state.id],
            "balance": state.balance,
            "version": state.version,
            "alerted": state.below_threshold,
        }
        for state in moved
    ]
    params = {
        "now": now,
        "transaction_id": transaction_id,
        "memo": _BATCH_MEMO,
        "revenue_id": revenue_id,
        "events": json.dumps(events, ensure_ascii=False),
        "wallets": json.dumps(wallets),
        "organization_ids": pg_array(sorted(state.organization_id for state in moved)),
    }
    usage_ids = [usage_id for (usage_id,) in fetchall_prepared(_POST_BATCH_SQL, params)]
    return [
        PostedUsage(usage_id, transaction_id, posting.remaining_credits, now)
        for usage_id, posting in zip(usage_ids, postings, strict=True)
    ]


class StaleWallets(Exception):
    """A wallet changed between a lock-last batch's read and its lock so that the batch's
    decisions may not hold: the statement wrote rows that must be rolled back."""


@dataclass(frozen=True)
class LockedWallet:
    """A wallet as the lock-last statement found it under its lock, before the batch's debits."""

    balance: int
    version: int
    low_credit_threshold: int | None


# A batch decided on unlocked wallets, in one statement that takes the wallets' locks last
# (PostgreSQL). Under the lock, every wallet must still allow the decisions:
#   - a wallet whose events were all accepted must still be active and able to pay their
#     sum; its balance may have moved (a concurrent report), since debits only lower it,
#     every event is then still within the limit, at a different remaining balance;
#   - a wallet with a refusal that depended on its state (paused, insufficient credits)
#     must be exactly as read.
# Then the wallets are debited and their entries and the events inserted with the balances
# computed from the locked ones. Otherwise nothing after the lock is written and the caller
# rolls back (StaleWallets) and posts the batch with its locks first.
#
#   ev  the events (no balances), t the batch's transaction and r its usage-revenue line,
#       inserted before the lock (the counts over t and r make PostgreSQL finish them first);
#   lk  locks every wallet involved, in primary-key order (no deadlocks), as committed last;
#   ok  every wallet passes its check;
#   w   debits the wallets with postings, returning their balance and version before;
#   ln  each event's balance after it: the locked balance less the wallet's running sum;
#   e   the wallets' entries (one each, with its balance after the batch), u the usage
#       events, o the outbox upserts.
_POST_BATCH_LOCK_LAST_SQL = (
    """
WITH ev AS (
    SELECT *
      FROM ROWS FROM (json_to_recordset(%(events)s::json) AS (
               wallet_id bigint, organization_id bigint, user_id bigint, api_key_id bigint,
               credits bigint, query_type text, metadata jsonb, idempotency_key text, fingerprint text,
               occurred_at timestamptz))
           WITH ORDINALITY AS e (wallet_id, organization_id, user_id, api_key_id, credits, query_type,
                                 metadata, idempotency_key, fingerprint, occurred_at, n)
), t AS (
"""
    + _INSERT_BATCH_TRANSACTION
    + """
), r AS (
    INSERT INTO credits_entry (transaction_id, account_id, amount, balance_after, created_at)
    SELECT %(transaction_id)s, %(revenue_id)s::bigint, sum(credits), NULL, %(now)s
      FROM ev
     WHERE (SELECT count(*) FROM t) > 0
    RETURNING 1
), v AS (
    SELECT *
      FROM json_to_recordset(%(wallets)s::json) AS v (
               id bigint, debit bigint, postings bigint, refused boolean, balance bigint, status text,
               overdraft_limit bigint)
), lk AS (
    SELECT a.id, a.balance, a.status, a.overdraft_limit
      FROM credits_account AS a
     WHERE a.id = ANY(%(wallet_ids)s::bigint[]) AND a.kind = 'customer' AND (SELECT count(*) FROM r) > 0
     ORDER BY a.id
       FOR NO KEY UPDATE
), ok AS (
    SELECT count(*) = %(wallet_count)s
           AND coalesce(bool_and(
                   CASE WHEN v.refused
                        THEN (lk.balance, lk.status, lk.overdraft_limit) = (v.balance, v.status, v.overdraft_limit)
                        ELSE lk.status = 'active' AND lk.balance - v.debit >= -lk.overdraft_limit
                   END), FALSE) AS passed
      FROM v JOIN lk ON lk.id = v.id
), w AS (
    UPDATE credits_account AS a
       SET balance = a.balance - v.debit,
           version = a.version + v.postings,
           updated_at = %(now)s,
           low_credit_alerted = (a.low_credit_threshold IS NOT NULL AND a.balance - v.debit < a.low_credit_threshold)
      FROM v, ok
     WHERE a.id = v.id AND v.postings > 0 AND ok.passed
    RETURNING a.id, a.organization_id, a.balance + v.debit AS balance_before, a.version - v.postings AS version_before,
              a.low_credit_threshold
), ln AS (
    SELECT ev.*, w.balance_before - sum(ev.credits) OVER (PARTITION BY ev.wallet_id ORDER BY ev.n) AS remaining
      FROM ev JOIN w ON w.id = ev.wallet_id
), e AS (
    INSERT INTO credits_entry (transaction_id, account_id, amount, balance_after, created_at)
    SELECT %(transaction_id)s, w.id, -v.debit, w.balance_before - v.debit, %(now)s
      FROM w JOIN v ON v.id = w.id
     ORDER BY w.id
), u AS (
"""
    + _INSERT_BATCH_EVENTS.format(rows="ln")
    + """
), o AS (
    INSERT INTO core_outboxitem (topic, object_id, changed_at)
    SELECT 'org', organization_id, clock_timestamp() FROM w ORDER BY organization_id
    ON CONFLICT (topic, object_id) DO UPDATE SET changed_at = EXCLUDED.changed_at, pushed_at = NULL
)
SELECT id, balance_before, version_before, low_credit_threshold FROM w
"""
)


def post_usage_batch_lock_last(
    postings: Sequence[BatchPosting], wallets: dict[int, WalletState], *, now: datetime
) -> dict[int, LockedWallet]:
    """Write a batch decided on `read_wallets` states, taking the wallets' locks last (PostgreSQL).

    Returns each debited wallet as found under its lock. Raises StaleWallets when a wallet
    no longer allows the decisions; call it in transaction.atomic() so that rolls back.
    The balances in `postings` are not used: the statement computes them from the locked
    balances, and the caller decides the batch again on `LockedWallet` states for its
    answers (the same decisions, see _POST_BATCH_LOCK_LAST_SQL).
    """
    debits = _debits(postings)
    checked = [state for state in wallets.values() if state.postings or state.refused]
    events = [_event_row(posting.charge) for posting in postings]
    checks = [
        {
            "id": state.id,
            "debit": debits.get(state.id, 0),
            "postings": state.postings,
            "refused": state.refused,
            "balance": state.balance + debits.get(state.id, 0),  # as read, before the batch
            "status": state.status,
            "overdraft_limit": state.overdraft_limit,
        }
        for state in checked
    ]
    params = {
        "now": now,
        "transaction_id": uuid.uuid4(),
        "memo": _BATCH_MEMO,
        "revenue_id": get_system_account(system_accounts.USAGE_REVENUE).pk,
        "events": json.dumps(events, ensure_ascii=False),
        "wallets": json.dumps(checks),
        "wallet_ids": pg_array(sorted(state.id for state in checked)),
        "wallet_count": len(checked),
    }
    rows = fetchall_prepared(_POST_BATCH_LOCK_LAST_SQL, params)
    if len(rows) != len(debits):
        raise StaleWallets()
    return {wallet_id: LockedWallet(*locked) for wallet_id, *locked in rows}


def after_usage_batch(moved: Sequence[WalletState]) -> None:
    """The effects of a batch written in SQL, once its states are final: the Redis push and the alerts."""
    push_after_commit("org", [state.organization_id for state in moved])
    _schedule_batch_alerts(moved)


def _update_wallets(states: Sequence[WalletState], now: datetime) -> None:
    """Write the balances, versions and alert flags the batch computed under its locks (portable path)."""
    if not states:
        return
    Account.objects.bulk_update(
        [
            Account(
                pk=state.id,
                balance=state.balance,
                version=state.version,
                low_credit_alerted=state.below_threshold,
                updated_at=now,
            )
            for state in states
        ],
        ["balance", "version", "low_credit_alerted", "updated_at"],
    )


def _usage_event(
    charge: UsageCharge, *, txn: Transaction, remaining_credits: int, recorded_at: datetime
) -> "UsageEvent":
    """The (unsaved) usage event that records `charge`, charged by `txn`."""
    from usage.models import UsageEvent

    return UsageEvent(
        organization_id=charge.organization_id,
        user_id=charge.user_id,
        api_key_id=charge.api_key_id,
        credits=charge.credits,
        query_type=charge.query_type,
        metadata=charge.metadata,
        idempotency_key=charge.idempotency_key,
        fingerprint=charge.fingerprint,
        occurred_at=charge.occurred_at,
        recorded_at=recorded_at,
        transaction=txn,
        remaining_credits=remaining_credits,
    )
