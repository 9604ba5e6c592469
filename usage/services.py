"""Recording usage reports (single and batch) and purging old idempotency keys.

The order of outcomes is the contract's (section 1): unknown user, then replay or
conflict, then unknown key, key revoked, key expired, wallet paused, query type, and
last the wallet's limit (checked by the posting itself). Rejections write nothing, so a
rejected key can be tried again.
"""

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apikeys.models import ApiKey
from core.errors import ApplicationError
from credits.errors import CreditsPaused, IdempotencyConflict, InsufficientCredits
from credits.models import Account
from credits.usage_posting import (
    USAGE_POSTED_COLUMNS,
    USAGE_POSTING_CTES,
    BatchPosting,
    LockedWallet,
    StaleWallets,
    UsageCharge,
    UsageKeyTaken,
    UsageWalletChanged,
    WalletState,
    after_usage_batch,
    lock_wallets,
    post_usage,
    post_usage_batch,
    post_usage_batch_lock_last,
    posted_usage,
    raise_refusal,
    read_wallets,
    run_usage_statement,
    usage_posting_params,
)
from usage import selectors
from usage.errors import ApiKeyExpired, ApiKeyRevoked, QueryTypeNotAllowed, UnknownApiKey, UnknownUser
from usage.models import UsageEvent

IDEMPOTENCY_KEY_TTL = timedelta(days=7)
MAX_BATCH_EVENTS = 500


@dataclass(frozen=True)
class UsageReport:
    """A validated report (shape checked at the edge). `occurred_at` None means "not given"."""

    user_id: int
    api_key_id: int
    credits: int
    query_type: str
    metadata: dict[str, Any] | None = None
    occurred_at: datetime | None = None
    idempotency_key: str | None = None

    @cached_property
    def fingerprint(self) -> str:
        """What makes two reports with one key the same report: metadata as a JSON value,
        occurredAt as an instant, absent and null alike."""
        occurred = None
        if self.occurred_at is not None:
            occurred = self.occurred_at.astimezone(UTC).isoformat(timespec="microseconds")
        metadata = _json_value(self.metadata)
        payload = [self.user_id, self.api_key_id, self.credits, self.query_type, metadata, occurred]
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()


def _json_value(value: Any) -> Any:
    """`value` with every whole-number float as an int: as JSON values 1, 1.0 and 1e0 are one number."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    return value


@dataclass(frozen=True)
class UsageOutcome:
    """The answer to a report: recorded (duplicate False) or the first answer replayed."""

    usage_id: int
    transaction_id: uuid.UUID
    remaining_credits: int
    recorded_at: datetime
    duplicate: bool


def _replay(prior: selectors.PriorEvent, fingerprint: str) -> UsageOutcome:
    if prior.fingerprint != fingerprint:
        raise IdempotencyConflict()
    return UsageOutcome(prior.usage_id, prior.transaction_id, prior.remaining_credits, prior.recorded_at, True)


def _check_key(key: selectors.KeyState | None, now: datetime) -> None:
    if key is None:
        raise UnknownApiKey()
    status = key.effective_status(now)
    if status == ApiKey.Status.REVOKED:
        raise ApiKeyRevoked()
    if status == ApiKey.Status.EXPIRED:
        raise ApiKeyExpired()


def _decide(context: selectors.ReportContext, report: UsageReport, now: datetime) -> UsageOutcome | None:
    """The contract's order of outcomes before the wallet's limit: the replay of the key's first
    answer, or an error raised; None when only the wallet is left to say yes or no."""
    if context.prior is not None:
        return _replay(context.prior, report.fingerprint)
    _check_key(context.key, now)
    org = context.org
    if org.wallet_status == Account.Status.PAUSED:
        raise CreditsPaused()
    if not org.plan.allows_query_type(report.query_type):
        raise QueryTypeNotAllowed()
    if org.wallet_id is None:
        raise InsufficientCredits(remainingCredits=0)
    return None


def record_usage(*, report: UsageReport, now: datetime | None = None) -> UsageOutcome:
    """Charge a usage report to the user's organization and record it, or replay its first answer.

    On PostgreSQL one statement reads the report's context and, when every check passes,
    posts it (its own transaction, _REPORT_SQL). When a concurrent report got in the way
    (it took the idempotency key, or emptied the wallet between check and lock) nothing was
    written, and the report is decided again in two queries: the context read, then the
    posting. Elsewhere always those two. Redis is written after commit. `now` (default: the
    current time) is the recorded time, for seeding history.
    """
    now = now or timezone.now()
    if connection.vendor == "postgresql" and settings.USAGE_POSTING_PATH != "orm":
        try:
            return _record_usage_in_one_statement(report, now)
        except (UsageKeyTaken, UsageWalletChanged):
            pass
    return _record_usage_in_two_queries(report, now)


def _record_usage_in_two_queries(report: UsageReport, now: datetime) -> UsageOutcome:
    context = selectors.get_report_context(
        user_id=report.user_id, api_key_id=report.api_key_id, idempotency_key=report.idempotency_key
    )
    if context is None:
        raise UnknownUser()
    replay = _decide(context, report, now)
    if replay is not None:
        return replay
    org = context.org
    charge = _charge_for(report, organization_id=org.organization_id, wallet_id=org.wallet_id, now=now)
    try:
        posted = post_usage(charge, now=now)
    except UsageKeyTaken:
        # A concurrent duplicate committed first (we waited for it): answer as it did.
        prior = selectors.get_live_event(organization_id=org.organization_id, idempotency_key=report.idempotency_key)
        if prior is None:
            raise
        return _replay(prior, report.fingerprint)
    assert posted.usage_id is not None
    return UsageOutcome(posted.usage_id, posted.transaction_id, posted.remaining_credits, posted.recorded_at, False)


# PostgreSQL: a report's context read and its posting in one statement, one round trip.
# `c` is the context read (usage.selectors.report_context_sql) and `ok` its checks in
# SQL: the wallet (unlocked, as last committed) when no live event holds the key, the key
# is active and not past its expiry, the plan allows the query type and the wallet can
# pay; then credits.usage_posting.USAGE_POSTING_CTES post it. The row is the context
# followed by the posting's columns, NULL when nothing was posted: the same checks in
# Python (_decide) then give the contract's answer. `ok` only lets through what _decide
# would (plan_allows_query_type: a JSON array holding the type; effective_key_status:
# expired once expires_at <= now).
_REPORT_SQL = """
WITH c AS (
{context}
), ok AS (
    SELECT a.id
      FROM c JOIN credits_account AS a ON a.id = c."organization__wallet__id"
     WHERE c."key__status" = 'active' AND (c."key__expires_at" IS NULL OR c."key__expires_at" > %(now)s)
       AND (c."organization__plan__allows_all_query_types"
            OR c."organization__plan__allowed_query_types" @> jsonb_build_array(%(query_type)s::text)){no_prior}
       AND a.kind = 'customer' AND a.status = 'active' AND a.balance - %(credits)s >= -a.overdraft_limit
), {posting}
SELECT c.*, {posted} FROM c LEFT JOIN w ON TRUE LEFT JOIN u ON TRUE
"""


@lru_cache(maxsize=2)
def _report_sql(with_key: bool) -> tuple[str, tuple[str, ...]]:
    context, fields = selectors.report_context_sql(with_key)
    sql = _REPORT_SQL.format(
        context=context,
        no_prior='\n       AND c."prior__id" IS NULL' if with_key else "",
        posting=USAGE_POSTING_CTES,
        posted=USAGE_POSTED_COLUMNS,
    )
    return sql, fields


def _record_usage_in_one_statement(report: UsageReport, now: datetime) -> UsageOutcome:
    sql, fields = _report_sql(report.idempotency_key is not None)
    params = usage_posting_params(**_charged(report, now), now=now)
    row = run_usage_statement(sql, params)
    if row is None:
        raise UnknownUser()
    if row[-1] is not None:
        posted = posted_usage(row, params)
        return UsageOutcome(posted.usage_id, posted.transaction_id, posted.remaining_credits, posted.recorded_at, False)
    context = selectors.report_context_from_row(dict(zip(fields, row[: len(fields)], strict=True)))
    replay = _decide(context, report, now)
    if replay is not None:
        return replay
    raise_refusal(context.org.wallet_id)


# --- Batches ----------------------------------------------------------------------------------


@dataclass
class BatchItem:
    """One entry of a batch: a valid report, or the validation error that rejects it."""

    event_id: str | None
    report: UsageReport | None = None
    user_id: int | None = None
    fields: dict[str, Any] | None = None


@dataclass
class BatchResult:
    event_id: str | None
    status: str
    error: str | None = None
    remaining_credits: int | None = None
    fields: dict[str, Any] | None = field(default=None)


@dataclass
class _Answer:
    fingerprint: str
    remaining_credits: int


def record_usage_batch(*, items: Sequence[BatchItem], now: datetime | None = None) -> list[BatchResult]:
    """Apply a batch's events in order, each with its own outcome, in one transaction.

    Reads the users' organizations and the keys in two queries. On PostgreSQL it then
    decides every event on the wallets and idempotency keys as last committed and writes
    all postings in one statement that locks the wallets last (_record_batch_lock_last).
    When a wallet changed meanwhile so that the decisions may not hold, or elsewhere, it
    locks every wallet involved first (primary-key order), reads the live idempotency keys,
    decides against the locked balances and writes all postings in bulk
    (credits.usage_posting.post_usage_batch). The same event id twice: the second is a
    duplicate of the first; a rejected first copy is tried again.
    """
    now = now or timezone.now()
    user_ids = {item.report.user_id if item.report else item.user_id for item in items} - {None}
    orgs = selectors.get_org_contexts(user_ids=user_ids)
    keys = selectors.get_key_states(api_key_ids={item.report.api_key_id for item in items if item.report})
    wallet_ids = {org.wallet_id for org in orgs.values() if org.wallet_id is not None}
    for item in items:  # hashed now, not while the wallets are locked
        if item.report is not None:
            item.report.fingerprint  # noqa: B018
    if connection.vendor == "postgresql":
        results = _record_batch_lock_last(items, orgs, keys, wallet_ids, now)
        if results is not None:
            return results
    for attempt in range(3):
        try:
            with transaction.atomic():
                wallets = lock_wallets(wallet_ids)
                live = selectors.get_live_events(keys=_idempotency_keys(items, orgs))
                results, postings = _decide_batch(items, orgs, keys, wallets, live, now)
                post_usage_batch(postings, wallets, now=now)
            return results
        except IntegrityError:
            # A key taken between our read and our insert cannot happen while we hold the
            # wallet locks; retry from a fresh read rather than fail the whole batch.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _idempotency_keys(items: Sequence[BatchItem], orgs: dict[int, selectors.OrgContext]) -> set[tuple[int, str]]:
    return {
        (orgs[item.report.user_id].organization_id, item.report.idempotency_key)
        for item in items
        if item.report and item.report.user_id in orgs and item.report.idempotency_key
    }


def _record_batch_lock_last(
    items: Sequence[BatchItem],
    orgs: dict[int, selectors.OrgContext],
    keys: dict[int, selectors.KeyState],
    wallet_ids: set[int],
    now: datetime,
) -> list[BatchResult] | None:
    """Decide on the wallets as last committed, then post with the locks taken last (PostgreSQL).

    Holds the wallets' locks only for their debits, the rows that carry balances and the
    commit, not for the reads, the decisions and the other inserts: concurrent batches over
    shared wallets queued on them for about 20 ms a batch of 100 with the locks first.
    Returns None, having written nothing, when a wallet changed so that the decisions may
    not hold or an event's key was taken meanwhile (the caller then locks first).
    """
    live = selectors.get_live_events(keys=_idempotency_keys(items, orgs))
    read = read_wallets(wallet_ids)
    decided = _copies(read)
    results, postings = _decide_batch(items, orgs, keys, decided, live, now)
    if not postings:
        return results  # nothing to write: the outcomes hold as read
    try:
        with transaction.atomic():
            locked = post_usage_batch_lock_last(postings, decided, now=now)
    except (StaleWallets, IntegrityError):
        return None
    # The same decisions on the wallets as locked, for the balances in the answers and the
    # alerts (a wallet's balance may have moved between the read and the lock).
    final = {wallet_id: _as_locked(state, locked.get(wallet_id)) for wallet_id, state in read.items()}
    results, _ = _decide_batch(items, orgs, keys, final, live, now)
    after_usage_batch([state for state in final.values() if state.postings])
    return results


def _copies(states: dict[int, WalletState]) -> dict[int, WalletState]:
    return {wallet_id: replace(state) for wallet_id, state in states.items()}


def _as_locked(state: WalletState, locked: LockedWallet | None) -> WalletState:
    if locked is None:  # not debited: unchanged, or checked unchanged under the lock
        return replace(state)
    return replace(
        state, balance=locked.balance, version=locked.version, low_credit_threshold=locked.low_credit_threshold
    )


def _charged(report: UsageReport, now: datetime) -> dict[str, Any]:
    """What the ledger charges for a validated report (occurred now unless it says when)."""
    return {
        "user_id": report.user_id,
        "api_key_id": report.api_key_id,
        "credits": report.credits,
        "query_type": report.query_type,
        "metadata": report.metadata,
        "idempotency_key": report.idempotency_key,
        "fingerprint": report.fingerprint,
        "occurred_at": report.occurred_at or now,
    }


def _charge_for(report: UsageReport, *, organization_id: int, wallet_id: int, now: datetime) -> UsageCharge:
    return UsageCharge(organization_id=organization_id, wallet_id=wallet_id, **_charged(report, now))


def _decide_batch(
    items: Sequence[BatchItem],
    orgs: dict[int, selectors.OrgContext],
    keys: dict[int, selectors.KeyState],
    wallets: dict[int, WalletState],
    live: dict[tuple[int, str], selectors.PriorEvent],
    now: datetime,
) -> tuple[list[BatchResult], list[BatchPosting]]:
    answers: dict[tuple[int, str], _Answer] = {
        key: _Answer(prior.fingerprint, prior.remaining_credits) for key, prior in live.items()
    }
    results: list[BatchResult] = []
    postings: list[BatchPosting] = []
    for item in items:
        report = item.report
        user_id = report.user_id if report else item.user_id
        org = orgs.get(user_id) if user_id is not None else None
        wallet = wallets.get(org.wallet_id) if org is not None and org.wallet_id is not None else None
        balance = wallet.balance if wallet is not None else None
        if report is None:
            results.append(BatchResult(item.event_id, "rejected", "validation_error", balance, item.fields))
            continue
        if org is None:
            results.append(BatchResult(item.event_id, "rejected", UnknownUser.code, None))
            continue
        fingerprint = report.fingerprint
        answer_key = (org.organization_id, report.idempotency_key or "")
        answer = answers.get(answer_key) if report.idempotency_key else None
        if answer is not None:
            if answer.fingerprint == fingerprint:
                results.append(BatchResult(item.event_id, "duplicate", None, answer.remaining_credits))
            else:
                results.append(BatchResult(item.event_id, "rejected", IdempotencyConflict.code, balance))
            continue
        error = _batch_refusal(report, org, keys.get(report.api_key_id), wallet, now)
        if error is not None:
            if wallet is not None and error in (CreditsPaused, InsufficientCredits):
                wallet.refused = True
            results.append(BatchResult(item.event_id, "rejected", error.code, balance))
            continue
        assert wallet is not None
        remaining = wallet.debit(report.credits)
        charge = _charge_for(report, organization_id=org.organization_id, wallet_id=wallet.id, now=now)
        postings.append(BatchPosting(charge, remaining))
        if report.idempotency_key:
            answers[answer_key] = _Answer(fingerprint, remaining)
        results.append(BatchResult(item.event_id, "recorded", None, remaining))
    return results, postings


def _batch_refusal(
    report: UsageReport,
    org: selectors.OrgContext,
    key: selectors.KeyState | None,
    wallet: WalletState | None,
    now: datetime,
) -> type[ApplicationError] | None:
    if key is None or key.organization_id != org.organization_id:
        return UnknownApiKey
    status = key.effective_status(now)
    if status == ApiKey.Status.REVOKED:
        return ApiKeyRevoked
    if status == ApiKey.Status.EXPIRED:
        return ApiKeyExpired
    if wallet is None:
        return InsufficientCredits
    if wallet.status != Account.Status.ACTIVE:
        return CreditsPaused
    if not org.plan.allows_query_type(report.query_type):
        return QueryTypeNotAllowed
    return wallet.refusal(report.credits)


# --- Idempotency keys -------------------------------------------------------------------------


def purge_idempotency_keys(*, now: datetime | None = None, chunk_size: int = 5000) -> int:
    """Release the idempotency keys of events recorded more than seven days ago; returns how many.

    The events stay (the key too, as history); only `idempotency_key_active` goes off, so
    the partial unique index lets the key be used again. Chunked, so no statement holds
    many row locks for long.
    """
    cutoff = (now or timezone.now()) - IDEMPOTENCY_KEY_TTL
    released = 0
    while True:
        ids = list(
            UsageEvent.objects.filter(
                idempotency_key_active=True, idempotency_key__isnull=False, recorded_at__lt=cutoff
            ).values_list("id", flat=True)[:chunk_size]
        )
        if not ids:
            return released
        released += UsageEvent.objects.filter(id__in=ids, idempotency_key_active=True).update(
            idempotency_key_active=False
        )
