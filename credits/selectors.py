"""Reads of the ledger shared by pages, the API, the admin and the commands."""

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from django.db import connection
from django.db.models import Count, F, OuterRef, Q, Subquery, Sum, Window
from django.db.models.functions import Coalesce

from accounts.models import Organization
from core.db import fetchone_prepared
from credits.errors import WalletNotFound
from credits.models import Account, Entry, Transaction


def get_system_account(code: str) -> Account:
    """A system account by code. They are installed by migration and never change, so cached per process."""
    return _system_account(code)


@lru_cache(maxsize=64)
def _system_account(code: str) -> Account:
    return Account.objects.get(kind=Account.Kind.SYSTEM, code=code)


def clear_system_account_cache() -> None:
    _system_account.cache_clear()


def get_wallet(*, organization: Organization) -> Account:
    """The organization's wallet; its `balance` is stored, so reading it never sums history."""
    wallet = Account.objects.filter(organization=organization).first()
    if wallet is None:
        raise WalletNotFound()
    return wallet


_BALANCE_SQL = "SELECT balance FROM credits_account WHERE organization_id = %s"


def get_balance(*, organization_id: int) -> int | None:
    """Just the balance, one indexed row (None when the organization has no wallet).

    On PostgreSQL a prepared statement (core.db): the ORM's compiling and the server's
    planning were most of a read that runs in a few microseconds."""
    if connection.vendor == "postgresql":
        row = fetchone_prepared(_BALANCE_SQL, [organization_id])
        return row[0] if row is not None else None
    return Account.objects.filter(organization_id=organization_id).values_list("balance", flat=True).first()


@dataclass
class EntryPage:
    """One page of a wallet's history, newest first; `next_before_id` continues it (None: last page)."""

    entries: list[Entry]
    next_before_id: int | None

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


MAX_PAGE_SIZE = 200


def list_wallet_entries(*, wallet: Account, before_id: int | None = None, limit: int = 50) -> EntryPage:
    """A wallet's entries newest first, by keyset on the (account, -id) index: page 1,000 costs what page 1 does."""
    limit = max(1, min(int(limit), MAX_PAGE_SIZE))
    queryset = Entry.objects.filter(account=wallet).select_related("transaction").order_by("-id")
    if before_id is not None:
        queryset = queryset.filter(id__lt=before_id)
    rows = list(queryset[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return EntryPage(entries=rows, next_before_id=rows[-1].id if more else None)


def get_transaction(*, transaction_id) -> Transaction | None:
    return Transaction.objects.filter(pk=transaction_id).prefetch_related("entries__account").first()


@dataclass(frozen=True)
class SystemFigures:
    """Where the credits came from and went to, for staff.

    `system_accounts`: (account, total) with total the sum of its entries (negative for
    sources such as purchases: what they issued). `outstanding` is what wallets hold;
    the two add up to zero when every transaction balances.
    """

    system_accounts: list[tuple[Account, int]]
    outstanding: int
    wallets: int
    wallets_in_debt: int
    paused_wallets: int
    transactions: int


def get_system_figures() -> SystemFigures:
    totals = dict(
        Entry.objects.filter(account__kind=Account.Kind.SYSTEM)
        .values("account_id")
        .annotate(total=Sum("amount"))
        .values_list("account_id", "total")
    )
    system = [
        (account, totals.get(account.pk, 0) or 0)
        for account in Account.objects.filter(kind=Account.Kind.SYSTEM).order_by("code")
    ]
    wallets = Account.objects.filter(kind=Account.Kind.CUSTOMER).aggregate(
        outstanding=Sum("balance"),
        count=Count("id"),
        in_debt=Count("id", filter=Q(balance__lt=0)),
        paused=Count("id", filter=Q(status=Account.Status.PAUSED)),
    )
    return SystemFigures(
        system_accounts=system,
        outstanding=wallets["outstanding"] or 0,
        wallets=wallets["count"],
        wallets_in_debt=wallets["in_debt"],
        paused_wallets=wallets["paused"],
        transactions=Transaction.objects.count(),
    )


@dataclass(frozen=True)
class LedgerCheck:
    """What `ledger_verify` reports: counts and every invariant that fails (empty when all hold)."""

    accounts: int
    transactions: int
    violations: list[dict]

    @property
    def ok(self) -> bool:
        return not self.violations


def verify_ledger(*, limit: int = 100) -> LedgerCheck:
    """Check every ledger invariant over the whole ledger, with one aggregate query per invariant.

    1. the entries of each transaction sum to zero, and a transaction has at least two;
    2. each wallet's stored balance equals the sum of its entries;
    3. each wallet entry's `balance_after` is the running sum of the wallet's entries in id order;
    4. no wallet is below `-overdraft_limit`;
    5. system accounts keep no balance.
    At most `limit` violations per invariant are listed.
    """
    violations: list[dict] = []
    unbalanced = (
        Entry.objects.values("transaction_id").annotate(total=Sum("amount")).exclude(total=0).order_by("transaction_id")
    )
    violations += [
        {"invariant": "transaction_sums_to_zero", "transactionId": str(row["transaction_id"]), "sum": row["total"]}
        for row in unbalanced[:limit]
    ]
    thin = Transaction.objects.annotate(lines=Count("entries")).filter(lines__lt=2).order_by("pk")
    violations += [
        {"invariant": "transaction_has_entries", "transactionId": str(pk), "entries": lines}
        for pk, lines in thin.values_list("pk", "lines")[:limit]
    ]
    entry_totals = (
        Entry.objects.filter(account=OuterRef("pk")).order_by().values("account").annotate(total=Sum("amount"))
    )
    drift = (
        Account.objects.filter(kind=Account.Kind.CUSTOMER)
        .annotate(total=Coalesce(Subquery(entry_totals.values("total")), 0))
        .exclude(balance=F("total"))
        .order_by("pk")
    )
    violations += [
        {"invariant": "balance_equals_entries", "accountId": pk, "orgId": org_id, "balance": balance, "entries": total}
        for pk, org_id, balance, total in drift.values_list("pk", "organization_id", "balance", "total")[:limit]
    ]
    chain = (
        Entry.objects.filter(account__kind=Account.Kind.CUSTOMER)
        .annotate(running=Window(Sum("amount"), partition_by=[F("account_id")], order_by=F("id").asc()))
        .filter(Q(balance_after__isnull=True) | ~Q(balance_after=F("running")))
        .order_by("account_id", "id")
    )
    violations += [
        {
            "invariant": "balance_after_chains",
            "accountId": account_id,
            "entryId": entry_id,
            "balanceAfter": balance_after,
            "expected": running,
        }
        for entry_id, account_id, balance_after, running in chain.values_list(
            "id", "account_id", "balance_after", "running"
        )[:limit]
    ]
    overdrawn = Account.objects.filter(kind=Account.Kind.CUSTOMER, balance__lt=-F("overdraft_limit")).order_by("pk")
    violations += [
        {"invariant": "within_overdraft_limit", "accountId": pk, "balance": balance, "overdraftLimit": limit_}
        for pk, balance, limit_ in overdrawn.values_list("pk", "balance", "overdraft_limit")[:limit]
    ]
    system_with_balance = Account.objects.filter(kind=Account.Kind.SYSTEM, balance__isnull=False).order_by("pk")
    violations += [
        {"invariant": "system_account_without_balance", "accountId": pk, "balance": balance}
        for pk, balance in system_with_balance.values_list("pk", "balance")[:limit]
    ]
    return LedgerCheck(
        accounts=Account.objects.count(), transactions=Transaction.objects.count(), violations=violations
    )
