"""Every balance change goes through `post_transaction`; the rest are named operations on it.

Locking: a posting writes its transaction row first and takes the wallet row locks
last, in primary-key order, with a conditional `UPDATE ... RETURNING` that checks status
and overdraft limit in the same step. On PostgreSQL a one-wallet posting (grants, spends,
refunds: nearly all of them) is a single statement that also inserts the entries and the
outbox row (`_SINGLE_WALLET_SQL`) and locks the wallet after everything else it can write,
so a hot wallet's lock covers the wallet's own writes and the commit; transfers and other
databases use the ORM path (`_apply_wallet_delta` per wallet, then bulk inserts). Services
that change a wallet without posting (pause, limits, plan version) lock it with
`select_for_update()`. Nothing here talks to the network: Redis pushes and emails are
registered with `core.outbox` / `core.effects` and run after commit.
"""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.models import Organization
from core.audit import record_audit
from core.db import fetchone_prepared
from core.effects import delay_on_commit
from core.outbox import push_after_commit, record_changes
from credits import system_accounts
from credits.errors import (
    CreditsPaused,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidPosting,
    NotASpend,
    OverdraftBelowDebt,
    ReasonRequired,
    ReasonTooLong,
    RefundExceedsSpend,
    SameWallet,
    WalletNotFound,
)
from credits.models import Account, Entry, Transaction
from credits.selectors import get_system_account

# Far above any real grant, far below 2**63: a typo cannot overflow a balance.
MAX_AMOUNT = 10**12
# A transaction's memo (the reason given for it) fits its column; a longer one is refused, never cut.
MAX_REASON_LENGTH = Transaction._meta.get_field("memo").max_length


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


@dataclass(frozen=True)
class Posting:
    """One line of a transaction: a signed amount on an account (positive adds credits)."""

    account: Account
    amount: int


def transaction_fingerprint(*, kind: str, postings: Sequence[Posting], related_id: Any = None) -> str:
    """What makes two requests with one idempotency key the same request."""
    lines = sorted((posting.account.pk, posting.amount) for posting in postings)
    payload = json.dumps([kind, lines, str(related_id) if related_id else None])
    return hashlib.sha256(payload.encode()).hexdigest()


def validate_amount(amount: Any) -> int:
    """A positive whole number of credits (not a bool, not a float), at most MAX_AMOUNT."""
    if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= MAX_AMOUNT:
        raise InvalidPosting(
            f"The amount must be a whole number of credits from 1 to {MAX_AMOUNT}.",
            fields={"amount": [f"Enter a whole number from 1 to {MAX_AMOUNT}."]},
        )
    return amount


def _validate_postings(kind: str, postings: Sequence[Posting]) -> None:
    if kind not in Transaction.Kind.values:
        raise InvalidPosting(f"Unknown transaction kind {kind!r}.")
    if len(postings) < 2:
        raise InvalidPosting("A transaction needs at least two postings.")
    for posting in postings:
        if isinstance(posting.amount, bool) or not isinstance(posting.amount, int) or posting.amount == 0:
            raise InvalidPosting("Every posting needs a non-zero integer amount.")
        if abs(posting.amount) > MAX_AMOUNT:
            raise InvalidPosting(f"A posting cannot move more than {MAX_AMOUNT} credits.")
        if posting.account.pk is None:
            raise InvalidPosting("Every posting needs a saved account.")
    if sum(posting.amount for posting in postings) != 0:
        raise InvalidPosting("The postings of a transaction must sum to zero.")
    wallet_ids = [posting.account.pk for posting in postings if posting.account.kind == Account.Kind.CUSTOMER]
    if len(wallet_ids) != len(set(wallet_ids)):
        raise InvalidPosting("A wallet can appear only once in a transaction.")


def _replay(existing: Transaction, fingerprint: str | None) -> Transaction:
    if fingerprint is not None and existing.fingerprint != fingerprint:
        raise IdempotencyConflict()
    existing.replayed = True
    existing.balances_after = {
        entry.account_id: entry.balance_after for entry in existing.entries.all() if entry.balance_after is not None
    }
    return existing


# One statement locks the wallet, checks its status and limit, and moves the balance.
# The SET expressions read the row's values before the update; `low_credit_alerted`
# becomes "below the threshold after this posting".
_WALLET_UPDATE_SQL = """
UPDATE credits_account
   SET balance = balance + %s,
       version = version + 1,
       updated_at = %s,
       low_credit_alerted = (low_credit_threshold IS NOT NULL AND balance + %s < low_credit_threshold)
 WHERE id = %s AND kind = 'customer'{conditions}
RETURNING balance, version, organization_id, low_credit_threshold
"""
_DEBIT_CONDITION = " AND balance + %s >= -overdraft_limit"
_ACTIVE_CONDITION = " AND status = 'active'"


@dataclass(frozen=True)
class _WalletChange:
    balance: int
    version: int
    organization_id: int
    low_credit_threshold: int | None


def _apply_wallet_delta(wallet_id: int, delta: int, *, allow_paused_debit: bool, now: Any) -> _WalletChange:
    """Add `delta` to a wallet in one round trip: `UPDATE ... WHERE <limits> RETURNING`.

    The row lock is taken here and held to commit. A debit only matches while the wallet
    stays within `-overdraft_limit` (and is active, unless `allow_paused_debit`), so the
    check and the write are one atomic step and the CHECK constraint never has to fire.
    Measured in benchmarks/ledger_benchmark.py: one statement instead of SELECT FOR UPDATE
    plus UPDATE keeps the hot-wallet lock to three statements.
    """
    conditions = ""
    params: list[Any] = [delta, connection.ops.adapt_datetimefield_value(now), delta, wallet_id]
    if delta < 0:
        conditions += _DEBIT_CONDITION
        params.append(delta)
        if not allow_paused_debit:
            conditions += _ACTIVE_CONDITION
    with connection.cursor() as cursor:
        cursor.execute(_WALLET_UPDATE_SQL.format(conditions=conditions), params)
        row = cursor.fetchone()
    if row is None:
        _raise_refused(wallet_id, allow_paused_debit)
    return _WalletChange(*row)


# PostgreSQL, one wallet in the transaction (grants, spends, refunds: nearly every posting):
# the whole posting is one statement, and it takes the wallet's row lock last, so the lock
# is held for the wallet's own writes and the commit only.
#
#   ok  the wallet can take the posting as last committed (no lock): otherwise nothing is
#       written and the wallet is not locked (zero rows: the caller raises 402/403);
#   t   the transaction row (outside a caller's transaction), then s the system-account
#       lines, both before the lock (the UPDATE's EXISTS over s makes PostgreSQL run them
#       first);
#   w   locks the wallet and moves it only if it still can (status, overdraft limit);
#   e   the wallet's entry, with the balance after it, inserted after the lock so a
#       wallet's entry ids follow its balances;
#   o   the outbox upsert; clock_timestamp() stamps it after the lock, so a later commit
#       of the same wallet never carries an older stamp.
#
# When a concurrent posting empties the wallet between `ok` and the lock, `w` matches no
# row and the system lines are left unbalanced: the zero-sum trigger refuses the commit and
# nothing stays (in a caller's transaction the savepoint of _post_in_transaction is rolled
# back); both are reported as the refusal they are. Measured with pgbench (8 clients, one
# hot wallet, 2026-11-21): 1,830-2,200 spends/s against 1,600-1,940 with the lock first.
_SINGLE_WALLET_SQL = """
WITH ok AS (
    SELECT 1 FROM credits_account WHERE id = %(wallet_id)s AND kind = 'customer'{conditions}
){transaction_cte}, s AS (
    INSERT INTO credits_entry (transaction_id, account_id, amount, balance_after, created_at)
    SELECT %(transaction_id)s, line.account_id, line.amount, NULL, %(now)s
      FROM {source}, (VALUES {lines}) AS line (n, account_id, amount)
     ORDER BY line.n
    RETURNING 1
), w AS (
    UPDATE credits_account
       SET balance = balance + %(delta)s,
           version = version + 1,
           updated_at = %(now)s,
           low_credit_alerted = (low_credit_threshold IS NOT NULL AND balance + %(delta)s < low_credit_threshold)
     WHERE id = %(wallet_id)s AND kind = 'customer'{conditions} AND EXISTS (SELECT 1 FROM s)
    RETURNING balance, version, organization_id, low_credit_threshold
), e AS (
    INSERT INTO credits_entry (transaction_id, account_id, amount, balance_after, created_at)
    SELECT %(transaction_id)s, %(wallet_id)s, %(delta)s, w.balance, %(now)s FROM w
), o AS (
    INSERT INTO core_outboxitem (topic, object_id, changed_at)
    SELECT 'org', w.organization_id, clock_timestamp() FROM w
    ON CONFLICT (topic, object_id) DO UPDATE SET changed_at = EXCLUDED.changed_at, pushed_at = NULL
)
SELECT balance, version, organization_id, low_credit_threshold FROM w
"""
# Outside any transaction the statement also writes the transaction row and runs alone in
# autocommit: the server commits right after it, so the lock is never held across a
# round trip to the application.
_TRANSACTION_CTE = """, t AS (
    INSERT INTO credits_transaction
        (id, kind, idempotency_key, fingerprint, memo, metadata, actor_id, related_id, created_at)
    SELECT %(transaction_id)s, %(kind)s, %(idempotency_key)s, %(fingerprint)s, %(memo)s, %(metadata)s::jsonb,
           %(actor_id)s, %(related_id)s, %(now)s
      FROM ok
    RETURNING 1
)"""


def is_unbalanced_commit(error: IntegrityError) -> bool:
    """The zero-sum trigger refused the commit (credits_entry_zero_sum, migration 0005)."""
    diag = getattr(error.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) == "credits_entry_zero_sum"


def _post_single_wallet(
    txn: Transaction,
    postings: Sequence[Posting],
    wallet_id: int,
    *,
    allow_paused_debit: bool,
    now: Any,
    insert_transaction: bool = False,
) -> _WalletChange:
    """The whole posting of a one-wallet transaction in one statement (PostgreSQL); see _SINGLE_WALLET_SQL.

    Same rows and checks as the portable path (`_apply_wallet_delta`, bulk_create,
    record_changes). Measured with benchmarks/ledger_benchmark.py (8 processes, 2 busy
    cores): with the ORM path (locking UPDATE, entries, outbox, COMMIT: four round trips
    under the lock) a hot wallet did 227 spends/s; in one autocommit statement 358 to
    685 spends/s (figures in the README).
    """
    delta = next(posting.amount for posting in postings if posting.account.pk == wallet_id)
    conditions = ""
    if delta < 0:
        conditions += " AND balance + %(delta)s >= -overdraft_limit"
        if not allow_paused_debit:
            conditions += _ACTIVE_CONDITION
    params: dict[str, Any] = {"delta": delta, "now": now, "wallet_id": wallet_id, "transaction_id": txn.pk}
    if insert_transaction:
        params.update(
            kind=txn.kind,
            idempotency_key=txn.idempotency_key,
            fingerprint=txn.fingerprint,
            memo=txn.memo,
            metadata=json.dumps(txn.metadata),
            actor_id=txn.actor_id,
            related_id=txn.related_id,
        )
    lines = []
    for n, posting in enumerate(postings):
        if posting.account.pk != wallet_id:
            params[f"a{n}"], params[f"m{n}"] = posting.account.pk, posting.amount
            lines.append(f"({n}, %(a{n})s::bigint, %(m{n})s::bigint)")
    sql = _SINGLE_WALLET_SQL.format(
        conditions=conditions,
        lines=", ".join(lines),
        transaction_cte=_TRANSACTION_CTE if insert_transaction else "",
        source="t" if insert_transaction else "ok",
    )
    # A handful of texts (debit or credit, in or out of a transaction, number of lines),
    # each prepared once per connection.
    try:
        row = fetchone_prepared(sql, params)
    except IntegrityError as error:
        if not is_unbalanced_commit(error):
            raise
        row = None  # emptied or paused between the check and the lock: nothing was written
    if row is None:
        _raise_refused(wallet_id, allow_paused_debit)
    change = _WalletChange(*row)
    push_after_commit("org", [change.organization_id])
    return change


def _raise_refused(wallet_id: int, allow_paused_debit: bool) -> None:
    wallet = Account.objects.filter(pk=wallet_id).values("status", "balance").first()
    if wallet is None:
        raise InvalidPosting("The wallet does not exist.")
    if wallet["status"] == Account.Status.PAUSED and not allow_paused_debit:
        raise CreditsPaused(remainingCredits=wallet["balance"])
    raise InsufficientCredits(remainingCredits=wallet["balance"])


def crossed_low_credit_threshold(*, previous_balance: int, balance: int, threshold: int | None) -> bool:
    """A posting took the wallet from at-or-above its threshold to below it."""
    return threshold is not None and previous_balance >= threshold > balance


def schedule_low_credit_alert(*, organization_id: int, version: int) -> None:
    """Queue the low-credit email after commit; `version` (the crossing posting's) makes it once only."""
    from credits.tasks import send_low_credit_alert

    delay_on_commit(send_low_credit_alert, organization_id, version)


def post_transaction(
    *,
    kind: str,
    postings: Sequence[Posting],
    idempotency_key: str | None = None,
    memo: str = "",
    metadata: dict[str, Any] | None = None,
    actor: Any = None,
    related: Transaction | None = None,
    allow_paused_debit: bool = False,
) -> Transaction:
    """Post a double-entry transaction and update the wallets it touches.

    The transaction row is written first; the wallets are locked last, in primary-key
    order (no deadlocks), each with one conditional update, and then the entries are
    inserted (a wallet's entry ids therefore follow its balance order). A debit on a
    paused wallet raises CreditsPaused unless `allow_paused_debit`; a debit below
    `-overdraft_limit` raises InsufficientCredits, and nothing is written. With an
    idempotency key, the same parameters return the original transaction (`replayed` is
    True) and other parameters raise IdempotencyConflict. The returned transaction
    carries `balances_after` ({wallet id: balance}) and `replayed`. After commit the
    wallets' organizations are pushed to Redis (core.outbox) and a low-credit alert is
    queued for each wallet that crossed its threshold.

    On PostgreSQL, a one-wallet posting called outside any transaction is one statement
    in autocommit (see _SINGLE_WALLET_SQL); inside a caller's transaction it joins it.
    """
    _validate_postings(kind, postings)
    fingerprint = transaction_fingerprint(kind=kind, postings=postings, related_id=related.pk if related else None)
    now = timezone.now()
    txn = Transaction(
        kind=kind,
        idempotency_key=idempotency_key or None,
        fingerprint=fingerprint,
        memo=_valid_memo(memo),
        metadata=metadata or {},
        actor=actor if getattr(actor, "pk", None) else None,
        related=related,
        created_at=now,
    )
    deltas = {
        posting.account.pk: posting.amount for posting in postings if posting.account.kind == Account.Kind.CUSTOMER
    }
    if (
        len(deltas) == 1
        and connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and connection.get_autocommit()
    ):
        return _post_in_one_statement(txn, postings, deltas, allow_paused_debit=allow_paused_debit, now=now)
    return _post_in_transaction(txn, postings, deltas, allow_paused_debit=allow_paused_debit, now=now)


def _existing(txn: Transaction) -> Transaction | None:
    if not txn.idempotency_key:
        return None
    existing = Transaction.objects.filter(idempotency_key=txn.idempotency_key).first()
    return _replay(existing, txn.fingerprint) if existing is not None else None


def _post_in_one_statement(
    txn: Transaction, postings: Sequence[Posting], deltas: dict[int, int], *, allow_paused_debit: bool, now: Any
) -> Transaction:
    (wallet_id,) = deltas
    try:
        change = _post_single_wallet(
            txn, postings, wallet_id, allow_paused_debit=allow_paused_debit, now=now, insert_transaction=True
        )
    except IntegrityError:
        # The key is taken (the statement waited for the first holder to commit): replay.
        replay = _existing(txn)
        if replay is None:
            raise
        return replay
    except (InsufficientCredits, CreditsPaused):
        # A replay must not depend on today's balance: the key's transaction wins.
        replay = _existing(txn)
        if replay is None:
            raise
        return replay
    txn._state.adding = False
    txn._state.db = connection.alias
    return _posted(txn, {wallet_id: change}, deltas)


@transaction.atomic
def _post_in_transaction(
    txn: Transaction, postings: Sequence[Posting], deltas: dict[int, int], *, allow_paused_debit: bool, now: Any
) -> Transaction:
    if txn.idempotency_key:
        # Insert first and look only on a clash: a fresh key costs no extra query, and a
        # concurrent duplicate waits on the unique index until the first one commits.
        try:
            with transaction.atomic():
                txn.save(force_insert=True)
        except IntegrityError:
            replay = _existing(txn)
            if replay is None:
                raise
            return replay
    else:
        txn.save(force_insert=True)

    if len(deltas) == 1 and connection.vendor == "postgresql":
        (wallet_id,) = deltas
        change = _post_single_wallet(txn, postings, wallet_id, allow_paused_debit=allow_paused_debit, now=now)
        return _posted(txn, {wallet_id: change}, deltas)
    changes = {
        wallet_id: _apply_wallet_delta(wallet_id, deltas[wallet_id], allow_paused_debit=allow_paused_debit, now=now)
        for wallet_id in sorted(deltas)
    }
    entries = [
        Entry(
            transaction=txn,
            account_id=posting.account.pk,
            amount=posting.amount,
            balance_after=changes[posting.account.pk].balance if posting.account.pk in changes else None,
            created_at=now,
        )
        for posting in postings
    ]
    Entry.objects.bulk_create(entries)
    record_changes("org", [change.organization_id for change in changes.values()])
    return _posted(txn, changes, deltas)


def _posted(txn: Transaction, changes: dict[int, _WalletChange], deltas: dict[int, int]) -> Transaction:
    """Queue the alerts of the wallets that crossed their threshold; mark the transaction as fresh."""
    for wallet_id, change in changes.items():
        if crossed_low_credit_threshold(
            previous_balance=change.balance - deltas[wallet_id],
            balance=change.balance,
            threshold=change.low_credit_threshold,
        ):
            schedule_low_credit_alert(organization_id=change.organization_id, version=change.version)

    txn.replayed = False
    txn.balances_after = {wallet_id: change.balance for wallet_id, change in changes.items()}
    return txn


def create_wallet(*, organization: Organization) -> Account:
    """The organization's wallet (created with the organization; idempotent)."""
    wallet, _ = Account.objects.get_or_create(
        organization=organization,
        defaults={"kind": Account.Kind.CUSTOMER, "name": f"Wallet of {organization.name}", "balance": 0},
    )
    return wallet


def _wallet_for(organization: Organization) -> Account:
    """The wallet as a posting target: only its id and kind are used, so the instance cached on
    the organization serves (post_transaction locks and reads the row itself)."""
    try:
        return organization.wallet
    except Account.DoesNotExist:
        return create_wallet(organization=organization)


def _locked_wallet(organization: Organization) -> Account:
    wallet = Account.objects.select_for_update().filter(organization=organization).first()
    if wallet is None:
        raise WalletNotFound()
    return wallet


def _valid_memo(memo: str | None) -> str:
    memo = memo or ""
    if len(memo) > MAX_REASON_LENGTH:
        raise ReasonTooLong(
            f"The reason is {len(memo):,} characters long: at most {MAX_REASON_LENGTH} are allowed.",
            fields={"reason": [f"At most {MAX_REASON_LENGTH} characters."]},
        )
    return memo


def _require_reason(reason: str | None) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired()
    return _valid_memo(reason)


def grant_credits(
    *,
    organization: Organization,
    amount: int,
    source: str = system_accounts.ADMIN_ADJUSTMENTS,
    kind: str = Transaction.Kind.ADMIN_ADD,
    reason: str = "",
    idempotency_key: str | None = None,
    metadata: dict[str, Any] | None = None,
    actor: Any = None,
) -> Transaction:
    """Add `amount` credits to the organization's wallet from the system account `source`.

    A paused wallet can receive credits.
    """
    validate_amount(amount)
    return post_transaction(
        kind=kind,
        postings=[Posting(get_system_account(source), -amount), Posting(_wallet_for(organization), amount)],
        idempotency_key=idempotency_key,
        memo=reason,
        metadata=metadata,
        actor=actor,
    )


def spend_credits(
    *,
    organization: Organization,
    amount: int,
    kind: str = Transaction.Kind.USAGE,
    destination: str = system_accounts.USAGE_REVENUE,
    reason: str = "",
    idempotency_key: str | None = None,
    metadata: dict[str, Any] | None = None,
    actor: Any = None,
) -> Transaction:
    """Take `amount` credits from the organization's wallet (within its overdraft limit; not when paused)."""
    validate_amount(amount)
    return post_transaction(
        kind=kind,
        postings=[Posting(_wallet_for(organization), -amount), Posting(get_system_account(destination), amount)],
        idempotency_key=idempotency_key,
        memo=reason,
        metadata=metadata,
        actor=actor,
    )


@transaction.atomic
def refund_credits(
    *,
    original: Transaction,
    amount: int,
    reason: str,
    idempotency_key: str | None = None,
    actor: Any = None,
    organization: Organization | None = None,
) -> Transaction:
    """Give back `amount` credits of an earlier spend to the wallet it came from.

    The spend is wallets debited to one system account: one wallet, or for a batch of usage
    reports (one transaction for the batch) each of its wallets, whose share is refunded by
    naming its `organization`. The refunds of a wallet's share together never exceed it (the
    spend's row is locked while they are added up, so concurrent refunds queue). A paused
    wallet can receive a refund.
    """
    validate_amount(amount)
    reason = _require_reason(reason)
    original = Transaction.objects.select_for_update().get(pk=original.pk)
    lines = list(original.entries.select_related("account"))
    debits = [line for line in lines if line.account.kind == Account.Kind.CUSTOMER and line.amount < 0]
    credits_ = [line for line in lines if line.account.kind == Account.Kind.SYSTEM and line.amount > 0]
    only_debits_to_one_system_account = debits and len(credits_) == 1 and len(debits) + 1 == len(lines)
    if original.kind == Transaction.Kind.REFUND or not only_debits_to_one_system_account:
        raise NotASpend()
    if organization is not None:
        debits = [line for line in debits if line.account.organization_id == organization.pk]
    if len(debits) != 1:
        raise NotASpend(
            "Name the organization whose share to refund: this spend debited several wallets."
            if organization is None
            else "This spend did not debit the organization's wallet."
        )
    wallet, revenue = debits[0].account, credits_[0].account
    postings = [Posting(revenue, -amount), Posting(wallet, amount)]
    if idempotency_key and Transaction.objects.filter(idempotency_key=idempotency_key).exists():
        return post_transaction(
            kind=Transaction.Kind.REFUND, postings=postings, idempotency_key=idempotency_key, related=original
        )
    refunded = (
        Entry.objects.filter(
            transaction__related=original, transaction__kind=Transaction.Kind.REFUND, account=wallet
        ).aggregate(total=Sum("amount"))["total"]
        or 0
    )
    refundable = -debits[0].amount - refunded
    if amount > refundable:
        raise RefundExceedsSpend(refundable=refundable)
    return post_transaction(
        kind=Transaction.Kind.REFUND,
        postings=postings,
        idempotency_key=idempotency_key,
        memo=reason,
        actor=actor,
        related=original,
    )


def transfer_credits(
    *,
    from_organization: Organization,
    to_organization: Organization,
    amount: int,
    reason: str,
    idempotency_key: str | None = None,
    actor: Any = None,
) -> Transaction:
    """Move `amount` credits from one organization's wallet to another's (the source within its limits)."""
    validate_amount(amount)
    if from_organization.pk == to_organization.pk:
        raise SameWallet()
    return post_transaction(
        kind=Transaction.Kind.TRANSFER,
        postings=[Posting(_wallet_for(from_organization), -amount), Posting(_wallet_for(to_organization), amount)],
        idempotency_key=idempotency_key,
        memo=reason,
        metadata={"from_org": from_organization.pk, "to_org": to_organization.pk},
        actor=actor,
    )


@transaction.atomic
def admin_add_credits(
    *,
    organization: Organization,
    amount: int,
    reason: str,
    idempotency_key: str | None = None,
    actor: Any = None,
) -> Transaction:
    """Staff add credits (reason required), from the admin-adjustments account; audited."""
    validate_amount(amount)
    reason = _require_reason(reason)
    txn = grant_credits(
        organization=organization,
        amount=amount,
        source=system_accounts.ADMIN_ADJUSTMENTS,
        kind=Transaction.Kind.ADMIN_ADD,
        reason=reason,
        idempotency_key=idempotency_key,
        actor=actor,
    )
    if not txn.replayed:
        _audit_adjustment("credits.admin_add", organization, txn, amount, reason, actor)
    return txn


@transaction.atomic
def admin_remove_credits(
    *,
    organization: Organization,
    amount: int,
    reason: str,
    idempotency_key: str | None = None,
    actor: Any = None,
) -> Transaction:
    """Staff remove credits (reason required), down to the overdraft limit, paused or not; audited."""
    validate_amount(amount)
    reason = _require_reason(reason)
    txn = post_transaction(
        kind=Transaction.Kind.ADMIN_REMOVE,
        postings=[
            Posting(_wallet_for(organization), -amount),
            Posting(get_system_account(system_accounts.ADMIN_ADJUSTMENTS), amount),
        ],
        idempotency_key=idempotency_key,
        memo=reason,
        actor=actor,
        allow_paused_debit=True,
    )
    if not txn.replayed:
        _audit_adjustment("credits.admin_remove", organization, txn, -amount, reason, actor)
    return txn


def _audit_adjustment(event: str, organization: Organization, txn: Transaction, amount: int, reason: str, actor: Any):
    balance = next(iter(txn.balances_after.values()))
    record_audit(
        event=event,
        actor=actor,
        organization=organization,
        target=f"transaction:{txn.pk}",
        old={"balance": balance - amount},
        new={"balance": balance, "amount": amount, "reason": reason},
    )


def _set_status(organization: Organization, status: str, event: str, actor: Any) -> Account:
    wallet = _locked_wallet(organization)
    if wallet.status == status:
        return wallet
    old = wallet.status
    wallet.status = status
    wallet.version += 1
    wallet.save(update_fields=["status", "version", "updated_at"])
    record_changes("org", [organization.pk])
    record_audit(event=event, actor=actor, organization=organization, target=f"wallet:{wallet.pk}", old=old, new=status)
    return wallet


@transaction.atomic
def pause_credits(*, organization: Organization, actor: Any = None) -> Account:
    """Pause the wallet: no spending until resumed (credits can still come in). Idempotent."""
    return _set_status(organization, Account.Status.PAUSED, "credits.paused", actor)


@transaction.atomic
def resume_credits(*, organization: Organization, actor: Any = None) -> Account:
    """Resume a paused wallet. Idempotent."""
    return _set_status(organization, Account.Status.ACTIVE, "credits.resumed", actor)


def _non_negative(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_AMOUNT:
        raise InvalidPosting(
            f"{name} must be a whole number from 0 to {MAX_AMOUNT}.",
            fields={name: [f"Enter a whole number from 0 to {MAX_AMOUNT}."]},
        )
    return value


@transaction.atomic
def set_wallet(
    *,
    organization: Organization,
    overdraft_limit: int | None = None,
    low_credit_threshold: int | None = UNSET,
    actor: Any = None,
) -> Account:
    """Change the overdraft limit and/or the low-credit threshold (None: no alerts).

    Leaving an argument out keeps the value. Negative numbers are refused, and so is an
    overdraft limit below the wallet's current debt. A change bumps the wallet's version
    (Redis shows the threshold) and is audited; no change writes nothing.
    """
    if overdraft_limit is not None:
        _non_negative("overdraft_limit", overdraft_limit)
    if low_credit_threshold is not UNSET and low_credit_threshold is not None:
        _non_negative("low_credit_threshold", low_credit_threshold)
    wallet = _locked_wallet(organization)
    old = {"overdraft_limit": wallet.overdraft_limit, "low_credit_threshold": wallet.low_credit_threshold}
    if overdraft_limit is not None:
        if wallet.balance < -overdraft_limit:
            raise OverdraftBelowDebt(balance=wallet.balance)
        wallet.overdraft_limit = overdraft_limit
    if low_credit_threshold is not UNSET:
        wallet.low_credit_threshold = low_credit_threshold
    new = {"overdraft_limit": wallet.overdraft_limit, "low_credit_threshold": wallet.low_credit_threshold}
    if new == old:
        return wallet
    # Below a new threshold already: no alert until the balance has been back above it.
    wallet.low_credit_alerted = wallet.low_credit_threshold is not None and wallet.balance < wallet.low_credit_threshold
    wallet.version += 1
    wallet.save(
        update_fields=["overdraft_limit", "low_credit_threshold", "low_credit_alerted", "version", "updated_at"]
    )
    record_changes("org", [organization.pk])
    record_audit(
        event="credits.wallet_settings",
        actor=actor,
        organization=organization,
        target=f"wallet:{wallet.pk}",
        old=old,
        new=new,
    )
    return wallet


@transaction.atomic
def bump_wallet_version(*, organization: Organization) -> Account:
    """Something Redis shows for the org changed outside the ledger (its plan): version + 1, push after commit."""
    wallet = _locked_wallet(organization)
    wallet.version += 1
    wallet.save(update_fields=["version", "updated_at"])
    record_changes("org", [organization.pk])
    return wallet


@transaction.atomic
def reclaim_credits(
    *,
    organization: Organization,
    amount: int,
    kind: str,
    source: str,
    reason: str,
    idempotency_key: str,
    actor: Any = None,
    metadata: dict[str, Any] | None = None,
) -> tuple[Transaction | None, int]:
    """Take back up to `amount` credits (a payment refunded or disputed) into the system account `source`.

    Takes as much as the wallet holds down to its overdraft limit, paused or not, and
    returns the transaction (None when nothing could be taken) and the shortfall that
    could not be taken. The same key returns the first result again; the same key with
    another amount or source is a conflict.
    """
    validate_amount(amount)
    if not idempotency_key:
        raise InvalidPosting("Reclaiming credits needs an idempotency key.")
    wallet = _locked_wallet(organization)
    existing = Transaction.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        requested = existing.metadata.get("reclaim", {})
        same_wallet = existing.entries.filter(account=wallet).exists()
        if (requested.get("requested"), requested.get("source"), existing.kind) != (amount, source, kind) or (
            not same_wallet
        ):
            raise IdempotencyConflict()
        return _replay(existing, None), requested["shortfall"]
    taken = max(0, min(amount, wallet.balance + wallet.overdraft_limit))
    shortfall = amount - taken
    if taken == 0:
        return None, shortfall
    txn = post_transaction(
        kind=kind,
        postings=[Posting(wallet, -taken), Posting(get_system_account(source), taken)],
        idempotency_key=idempotency_key,
        memo=reason,
        metadata={**(metadata or {}), "reclaim": {"requested": amount, "source": source, "shortfall": shortfall}},
        actor=actor,
        allow_paused_debit=True,
    )
    return txn, shortfall
