"""Reads of the usage app: the report context (hot path), and the customer's list and summary."""

import base64
import binascii
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from django.db import connection
from django.db.models import Count, FilteredRelation, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from accounts.models import Membership
from apikeys.models import ApiKey, effective_key_status
from billing.models import plan_allows_query_type
from core.db import fetchall_prepared, fetchone_prepared, pg_array
from usage.models import UsageEvent


@dataclass(frozen=True)
class PriorEvent:
    """A live usage event holding an idempotency key: what a replay answers."""

    usage_id: int
    fingerprint: str
    remaining_credits: int
    recorded_at: datetime
    transaction_id: uuid.UUID


@dataclass(frozen=True)
class PlanRules:
    """What a report is checked against in the organization's plan (no model instance on the hot path)."""

    code: str
    allows_all_query_types: bool
    allowed_query_types: list[str]

    def allows_query_type(self, query_type: str) -> bool:
        return plan_allows_query_type(self.allows_all_query_types, self.allowed_query_types, query_type)


@dataclass(frozen=True)
class OrgContext:
    organization_id: int
    wallet_id: int | None
    wallet_status: str | None
    plan: PlanRules


@dataclass(frozen=True)
class KeyState:
    id: int
    organization_id: int
    status: str
    expires_at: datetime | None

    def effective_status(self, now: datetime) -> str:
        return effective_key_status(self.status, self.expires_at, now)


@dataclass(frozen=True)
class ReportContext:
    org: OrgContext
    key: KeyState | None
    prior: PriorEvent | None


_ORG_FIELDS = (
    "organization_id",
    "organization__wallet__id",
    "organization__wallet__status",
    "organization__plan_id",
    "organization__plan__allows_all_query_types",
    "organization__plan__allowed_query_types",
)
_PRIOR_FIELDS = ("id", "fingerprint", "remaining_credits", "recorded_at", "transaction_id")


def _org_context(row: dict[str, Any]) -> OrgContext:
    allowed = row["organization__plan__allowed_query_types"]
    if isinstance(allowed, str):  # jsonb as text: Django's connections leave decoding to the field
        allowed = json.loads(allowed)
    plan = PlanRules(
        code=row["organization__plan_id"],
        allows_all_query_types=row["organization__plan__allows_all_query_types"],
        allowed_query_types=allowed if isinstance(allowed, list) else [],
    )
    return OrgContext(
        organization_id=row["organization_id"],
        wallet_id=row["organization__wallet__id"],
        wallet_status=row["organization__wallet__status"],
        plan=plan,
    )


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def get_report_context(*, user_id: int, api_key_id: int, idempotency_key: str | None) -> ReportContext | None:
    """Everything a report is checked against, in one query: the user's organization, its
    plan and wallet, the API key when it is that organization's, and the live event holding
    the idempotency key. None when the user is unknown or belongs to no organization.

    On PostgreSQL the ORM's SQL is compiled once per process and run as a prepared
    statement (the hot path would otherwise compile and plan it on every report)."""
    if connection.vendor == "postgresql":
        row = _run_prepared(idempotency_key is not None, user_id, api_key_id, idempotency_key)
    else:
        queryset, fields = _context_queryset(user_id, api_key_id, idempotency_key)
        rows = list(queryset.values(*fields)[:1])
        row = rows[0] if rows else None
    if row is None:
        return None
    return report_context_from_row(row)


def _context_queryset(user_id: Any, api_key_id: Any, idempotency_key: str | None) -> tuple[QuerySet, list[str]]:
    queryset = Membership.objects.filter(user_id=user_id).annotate(
        key=FilteredRelation("organization__api_keys", condition=Q(organization__api_keys__pk=api_key_id))
    )
    fields = [*_ORG_FIELDS, "key__id", "key__status", "key__expires_at"]
    if idempotency_key is not None:
        queryset = queryset.annotate(
            prior=FilteredRelation(
                "organization__usage_events",
                condition=Q(
                    organization__usage_events__idempotency_key=idempotency_key,
                    organization__usage_events__idempotency_key_active=True,
                ),
            )
        )
        fields += [f"prior__{name}" for name in _PRIOR_FIELDS]
    return queryset, fields


# Sentinels that mark where each argument lands among the compiled query's parameters.
_SLOTS = {-7_000_001: "user_id", -7_000_002: "api_key_id", "\x01idempotency-key\x01": "idempotency_key"}
_USER, _KEY, _IDEMPOTENCY = _SLOTS


@lru_cache(maxsize=2)
def report_context_sql(with_key: bool) -> tuple[str, tuple[str, ...]]:
    """The context read, compiled once from the ORM query, as SQL with named parameters
    (%(user_id)s, %(api_key_id)s, %(idempotency_key)s), and its columns' names; run alone
    (_run_prepared) or embedded in the report's statement (usage.services), PostgreSQL.
    `report_context_from_row` reads its row."""
    queryset, fields = _context_queryset(_USER, _KEY, _IDEMPOTENCY if with_key else None)
    sql, params = queryset.values(*fields)[:1].query.sql_with_params()
    pieces = sql.split("%s")
    if len(pieces) != len(params) + 1:
        raise AssertionError("the compiled context query holds a literal %s")
    named = [piece + f"%({_SLOTS[param]})s" for piece, param in zip(pieces, params, strict=False)]
    return "".join(named) + pieces[-1], tuple(fields)


def _run_prepared(with_key: bool, user_id: int, api_key_id: int, idempotency_key: str | None) -> dict | None:
    sql, fields = report_context_sql(with_key)
    row = fetchone_prepared(sql, {"user_id": user_id, "api_key_id": api_key_id, "idempotency_key": idempotency_key})
    return dict(zip(fields, row, strict=True)) if row is not None else None


def report_context_from_row(row: dict[str, Any]) -> ReportContext:
    org = _org_context(row)
    key = None
    if row["key__id"] is not None:
        key = KeyState(row["key__id"], org.organization_id, row["key__status"], row["key__expires_at"])
    prior = None
    if row.get("prior__id") is not None:
        prior = PriorEvent(
            row["prior__id"],
            row["prior__fingerprint"],
            row["prior__remaining_credits"],
            row["prior__recorded_at"],
            _uuid(row["prior__transaction_id"]),
        )
    return ReportContext(org=org, key=key, prior=prior)


def get_live_event(*, organization_id: int, idempotency_key: str) -> PriorEvent | None:
    row = (
        UsageEvent.objects.filter(
            organization_id=organization_id, idempotency_key=idempotency_key, idempotency_key_active=True
        )
        .values_list(*_PRIOR_FIELDS)
        .first()
    )
    return PriorEvent(*row[:4], _uuid(row[4])) if row else None


# --- Batches: the same reads, in bulk ---------------------------------------------------------


# The ORM reads below, as prepared statements over one array parameter (PostgreSQL): with
# a literal IN list of a hundred ids the ORM built and PostgreSQL planned a new statement
# for every batch (a fifth of a batch's Python time went to building the org read).
_ORG_CONTEXTS_SQL = """
SELECT m.user_id, m.organization_id, a.id, a.status, o.plan_code, p.allows_all_query_types, p.allowed_query_types
  FROM accounts_membership AS m
  JOIN accounts_organization AS o ON o.id = m.organization_id
  JOIN billing_plan AS p ON p.code = o.plan_code
  LEFT JOIN credits_account AS a ON a.organization_id = o.id
 WHERE m.user_id = ANY(%s::bigint[])
"""
_KEY_STATES_SQL = """
SELECT id, organization_id, status, expires_at FROM apikeys_apikey WHERE id = ANY(%s::bigint[])
"""


def get_org_contexts(*, user_ids: Iterable[int]) -> dict[int, OrgContext]:
    """The organization context of each user (users without an organization are left out)."""
    user_ids = sorted(set(user_ids))
    if connection.vendor == "postgresql":
        if not user_ids:
            return {}
        rows = [
            dict(zip(("user_id", *_ORG_FIELDS), row, strict=True))
            for row in fetchall_prepared(_ORG_CONTEXTS_SQL, [pg_array(user_ids)])
        ]
    else:
        rows = Membership.objects.filter(user_id__in=user_ids).values("user_id", *_ORG_FIELDS)
    return {row["user_id"]: _org_context(row) for row in rows}


def get_key_states(*, api_key_ids: Iterable[int]) -> dict[int, KeyState]:
    api_key_ids = sorted(set(api_key_ids))
    if connection.vendor == "postgresql":
        rows = fetchall_prepared(_KEY_STATES_SQL, [pg_array(api_key_ids)]) if api_key_ids else []
    else:
        rows = ApiKey.objects.filter(pk__in=api_key_ids).values_list("pk", "organization_id", "status", "expires_at")
    return {row[0]: KeyState(*row) for row in rows}


_LIVE_EVENTS_SQL = """
SELECT e.organization_id, e.idempotency_key, e.id, e.fingerprint, e.remaining_credits, e.recorded_at, e.transaction_id
  FROM unnest(%s::bigint[], %s::text[]) AS k (organization_id, idempotency_key)
  JOIN usage_usageevent AS e
    ON e.organization_id = k.organization_id AND e.idempotency_key = k.idempotency_key AND e.idempotency_key_active
"""


def get_live_events(*, keys: Iterable[tuple[int, str]]) -> dict[tuple[int, str], PriorEvent]:
    """Live events holding these (organization id, idempotency key) pairs."""
    keys = set(keys)
    if not keys:
        return {}
    if connection.vendor == "postgresql":
        # One probe of the (organization, key) unique index per pair. Filtering by the
        # organizations and the keys separately read every event of those organizations
        # (90 ms per batch of 100 at 470,000 events).
        org_ids, idempotency_keys = zip(*keys, strict=True)
        rows = fetchall_prepared(_LIVE_EVENTS_SQL, [pg_array(org_ids), pg_array(idempotency_keys)])
        return {(org_id, key): PriorEvent(*prior[:4], _uuid(prior[4])) for org_id, key, *prior in rows}
    rows = UsageEvent.objects.filter(
        organization_id__in={org for org, _ in keys},
        idempotency_key__in={key for _, key in keys},
        idempotency_key_active=True,
    ).values_list("organization_id", "idempotency_key", *_PRIOR_FIELDS)
    found = {}
    for org_id, key, *prior in rows:
        if (org_id, key) in keys:
            found[(org_id, key)] = PriorEvent(*prior[:4], _uuid(prior[4]))
    return found


# --- The customer's usage ------------------------------------------------------------------


@dataclass(frozen=True)
class UsageFilters:
    """Filters of the customer list, summary, CSV and portal page. Dates are UTC days of recorded_at."""

    date_from: date | None = None
    date_to: date | None = None
    api_key_id: int | None = None
    query_type: str | None = None

    def apply(self, queryset: QuerySet[UsageEvent]) -> QuerySet[UsageEvent]:
        if self.date_from is not None:
            queryset = queryset.filter(recorded_at__gte=_day_start(self.date_from))
        if self.date_to is not None and self.date_to < date.max:  # the last day has no day after it
            queryset = queryset.filter(recorded_at__lt=_day_start(self.date_to + timedelta(days=1)))
        if self.api_key_id is not None:
            queryset = queryset.filter(api_key_id=self.api_key_id)
        if self.query_type is not None:
            queryset = queryset.filter(query_type=self.query_type)
        return queryset


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def encode_cursor(recorded_at: datetime, usage_id: int) -> str:
    text = f"{recorded_at.astimezone(UTC).isoformat()}|{usage_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int] | None:
    """(recorded_at, id) of the last row of the previous page; None when the cursor is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, usage_id = text.split("|")
        recorded_at = datetime.fromisoformat(stamp)
        number = int(usage_id)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return None
    if recorded_at.tzinfo is None or not 1 <= number <= 2**63 - 1:
        return None
    return recorded_at, number


def list_usage_page(
    queryset: QuerySet[UsageEvent], *, filters: UsageFilters, after: tuple[datetime, int] | None, limit: int
) -> tuple[list[UsageEvent], tuple[datetime, int] | None]:
    """One page, newest first, by keyset (recorded_at, id); returns the rows and the next page's position."""
    queryset = filters.apply(queryset).select_related("api_key").order_by("-recorded_at", "-id")
    if after is not None:
        recorded_at, usage_id = after
        queryset = queryset.filter(Q(recorded_at__lt=recorded_at) | Q(recorded_at=recorded_at, id__lt=usage_id))
    rows = list(queryset[: limit + 1])
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, (rows[-1].recorded_at, rows[-1].pk)
    return rows, None


def iter_usage(queryset: QuerySet[UsageEvent], *, filters: UsageFilters) -> Iterable[UsageEvent]:
    """Every matching event, newest first, streamed (the CSV export)."""
    return filters.apply(queryset).select_related("api_key").order_by("-recorded_at", "-id").iterator(chunk_size=2000)


def summarize_usage(queryset: QuerySet[UsageEvent], *, filters: UsageFilters) -> dict[str, Any]:
    """Credits and event counts in total, per UTC day and query type, and per API key."""
    queryset = filters.apply(queryset)
    totals = queryset.aggregate(credits=Sum("credits"), events=Count("id"))
    by_day = (
        queryset.annotate(day=TruncDate("recorded_at", tzinfo=UTC))
        .values("day", "query_type")
        .annotate(credits=Sum("credits"), events=Count("id"))
        .order_by("day", "query_type")
    )
    by_key = (
        queryset.values("api_key_id", "api_key__name", "api_key__prefix")
        .annotate(credits=Sum("credits"), events=Count("id"))
        .order_by("-credits", "api_key_id")
    )
    return {
        "totals": {"credits": totals["credits"] or 0, "events": totals["events"] or 0},
        "by_day": [
            {"date": row["day"], "query_type": row["query_type"], "credits": row["credits"], "events": row["events"]}
            for row in by_day
        ],
        "by_api_key": [
            {
                "api_key_id": row["api_key_id"],
                "name": row["api_key__name"],
                "prefix": row["api_key__prefix"],
                "credits": row["credits"],
                "events": row["events"],
            }
            for row in by_key
        ],
    }


def daily_credits_by_query_type(
    queryset: QuerySet[UsageEvent], *, first_day: date, last_day: date
) -> dict[date, dict[str, int]]:
    """{day: {query type: credits}} for every day from first_day to last_day (empty days included)."""
    days = {first_day + timedelta(days=n): {} for n in range((last_day - first_day).days + 1)}
    summary = summarize_usage(queryset, filters=UsageFilters(date_from=first_day, date_to=last_day))
    for row in summary["by_day"]:
        if row["date"] in days:
            days[row["date"]][row["query_type"]] = row["credits"]
    return days
