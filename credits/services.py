"""Every balance change goes through `post_transaction`; the rest are named operations on it."""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Organization
from core.effects import delay_on_commit
from core.outbox import record_changes
from credits import system_accounts
from credits.errors import CreditsPaused, IdempotencyConflict, InsufficientCredits, InvalidPosting
from credits.models import Account, Entry, Transaction
from credits.selectors import get_system_account


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


def _validate_postings(postings: Sequence[Posting]) -> None:
    if len(postings) < 2:
        raise InvalidPosting("A transaction needs at least two postings.")
    for posting in postings:
        if isinstance(posting.amount, bool) or not isinstance(posting.amount, int) or posting.amount == 0:
            raise InvalidPosting("Every posting needs a non-zero integer amount.")
        if posting.account.pk is None:
            raise InvalidPosting("Every posting needs a saved account.")
    if sum(posting.amount for posting in postings) != 0:
        raise InvalidPosting("The postings of a transaction must sum to zero.")


def _replay(existing: Transaction, fingerprint: str) -> Transaction:
    if existing.fingerprint != fingerprint:
        raise IdempotencyConflict()
    existing.replayed = True
    existing.balances_after = {
        entry.account_id: entry.balance_after for entry in existing.entries.all() if entry.balance_after is not None
    }
    return existing


@transaction.atomic
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

    Wallets are locked in primary-key order (no deadlocks) after the transaction row is
    written, so the lock is held only for the entries and the balance update. A debit
    on a paused wallet raises CreditsPaused unless `allow_paused_debit`; a debit below
    `-overdraft_limit` raises InsufficientCredits. With an idempotency key, the same
    parameters return the original transaction (`replayed` is True) and other
    parameters raise IdempotencyConflict. The returned transaction carries
    `balances_after` ({wallet id: balance}) and `replayed`.
    """
    _validate_postings(postings)
    fingerprint = transaction_fingerprint(kind=kind, postings=postings, related_id=related.pk if related else None)
    if idempotency_key:
        existing = Transaction.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return _replay(existing, fingerprint)

    now = timezone.now()
    txn = Transaction(
        kind=kind,
        idempotency_key=idempotency_key or None,
        fingerprint=fingerprint,
        memo=memo[:500],
        metadata=metadata or {},
        actor=actor if getattr(actor, "pk", None) else None,
        related=related,
        created_at=now,
    )
    try:
        with transaction.atomic():
            txn.save(force_insert=True)
    except IntegrityError:
        if not idempotency_key:
            raise
        return _replay(Transaction.objects.get(idempotency_key=idempotency_key), fingerprint)

    wallet_ids = sorted({posting.account.pk for posting in postings if posting.account.kind == Account.Kind.CUSTOMER})
    wallets = {
        wallet.pk: wallet for wallet in Account.objects.select_for_update().filter(pk__in=wallet_ids).order_by("pk")
    }
    entries: list[Entry] = []
    alerts: list[int] = []
    for posting in postings:
        wallet = wallets.get(posting.account.pk)
        if wallet is None:
            entries.append(Entry(transaction=txn, account=posting.account, amount=posting.amount, created_at=now))
            continue
        if posting.amount < 0:
            if wallet.status == Account.Status.PAUSED and not allow_paused_debit:
                raise CreditsPaused(remainingCredits=wallet.balance)
            if wallet.balance + posting.amount < -wallet.overdraft_limit:
                raise InsufficientCredits(remainingCredits=wallet.balance)
        previous = wallet.balance
        wallet.balance += posting.amount
        if _crossed_below_threshold(wallet, previous):
            wallet.low_credit_alerted = True
            alerts.append(wallet.organization_id)
        elif wallet.low_credit_threshold is not None and wallet.balance >= wallet.low_credit_threshold:
            wallet.low_credit_alerted = False
        entries.append(
            Entry(
                transaction=txn,
                account=wallet,
                amount=posting.amount,
                balance_after=wallet.balance,
                created_at=now,
            )
        )

    Entry.objects.bulk_create(entries)
    for wallet in wallets.values():
        wallet.version += 1
        wallet.updated_at = now
        Account.objects.filter(pk=wallet.pk).update(
            balance=wallet.balance,
            version=wallet.version,
            low_credit_alerted=wallet.low_credit_alerted,
            updated_at=now,
        )
    record_changes("org", [wallet.organization_id for wallet in wallets.values()])
    for organization_id in alerts:
        from credits.tasks import send_low_credit_alert

        delay_on_commit(send_low_credit_alert, organization_id)

    txn.replayed = False
    txn.balances_after = {wallet.pk: wallet.balance for wallet in wallets.values()}
    return txn


def _crossed_below_threshold(wallet: Account, previous_balance: int) -> bool:
    threshold = wallet.low_credit_threshold
    return threshold is not None and not wallet.low_credit_alerted and previous_balance >= threshold > wallet.balance


def create_wallet(*, organization: Organization) -> Account:
    """The organization's wallet (created with the organization; idempotent)."""
    wallet, _ = Account.objects.get_or_create(
        organization=organization,
        defaults={"kind": Account.Kind.CUSTOMER, "name": f"Wallet of {organization.name}", "balance": 0},
    )
    return wallet


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
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
        raise InvalidPosting("The amount must be a whole number of credits, at least 1.")
    wallet = create_wallet(organization=organization)
    return post_transaction(
        kind=kind,
        postings=[Posting(get_system_account(source), -amount), Posting(wallet, amount)],
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
    """Take `amount` credits from the organization's wallet (within its overdraft limit)."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
        raise InvalidPosting("The amount must be a whole number of credits, at least 1.")
    wallet = create_wallet(organization=organization)
    return post_transaction(
        kind=kind,
        postings=[Posting(wallet, -amount), Posting(get_system_account(destination), amount)],
        idempotency_key=idempotency_key,
        memo=reason,
        metadata=metadata,
        actor=actor,
    )
