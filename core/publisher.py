"""Writes the hashes of the public contract (section 3) to Redis, which the public query API reads.

- `P:key:<sha256>`: api_key_id, user_id (the creator), org_id, status, scopes (comma-separated),
  expires_at (ISO-8601 or empty).
- `P:org:<org_id>`: balance, status, version, low_threshold (or empty), plan.

Never backwards. Every write is a Lua compare-and-set that runs atomically in Redis: an org
hash is written only if the stored `version` is not higher than the one being written, so
a slow push that read an older balance cannot replace a newer one. Key hashes have no
version, but a key's status only moves forward (active → expired → revoked), so a key hash
is written only if it does not move the stored status back.

`push_changes(topic, ids)` reads the objects with their outbox stamps in one query, writes
them in one pipeline and marks pushed the outbox rows whose stamp is unchanged (a change
committed meanwhile stays pending for its own push). After commit, `publish` calls it at
once, or, in a web server process (config.wsgi), hands the ids to the process's
`BackgroundPublisher`, which pushes what many requests changed with one push.
A Redis error is logged and the rows stay pending for `drain_outbox` (every 30 s).
`reconcile` compares every hash with the database and repairs each difference; `resync`
rewrites all. With publishing off (`get_redis()` is None) pushes just mark their rows pushed.
"""

import atexit
import contextlib
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import redis
from django.db import connection
from django.db.models import F, OuterRef, Q, Subquery
from django.utils import timezone

from core.db import execute_prepared, fetchall_prepared, pg_array
from core.models import OutboxItem
from core.redis import get_redis, redis_key

logger = logging.getLogger(__name__)

BATCH_SIZE = 5000
# After a failed push, pushes from requests skip Redis for this long (their outbox rows
# wait for the drain) so a Redis outage does not add a connect timeout to every request.
CIRCUIT_OPEN_SECONDS = 5.0

# Both scripts take many hashes per call (KEYS = hash names, ARGV = their field values in
# the order of the `fields` table) and return how many they wrote. One call per few hundred
# hashes keeps a resync of 1,000,000 keys to a few thousand round trips.
ORG_CAS_LUA = """
local fields = {'balance', 'status', 'version', 'low_threshold', 'plan'}
local n = #fields
local written = 0
for i, name in ipairs(KEYS) do
  local base = (i - 1) * n
  local stored = tonumber(redis.call('HGET', name, 'version'))
  if not (stored and stored > tonumber(ARGV[base + 3])) then
    local args = {}
    for j = 1, n do
      args[2 * j - 1] = fields[j]
      args[2 * j] = ARGV[base + j]
    end
    redis.call('HSET', name, unpack(args))
    written = written + 1
  end
end
return written
"""

KEY_CAS_LUA = """
local fields = {'api_key_id', 'user_id', 'org_id', 'status', 'scopes', 'expires_at'}
local rank = {active = 0, expired = 1, revoked = 2}
local n = #fields
local written = 0
for i, name in ipairs(KEYS) do
  local base = (i - 1) * n
  local status = ARGV[base + 4]
  local stored = redis.call('HGET', name, 'status')
  if not (stored and rank[stored] and rank[stored] > rank[status]) then
    local args = {}
    for j = 1, n do
      args[2 * j - 1] = fields[j]
      args[2 * j] = ARGV[base + j]
    end
    redis.call('HSET', name, unpack(args))
    written = written + 1
  end
end
return written
"""
SCRIPT_BATCH = 500

KEY_STATUS_RANK = {"active": 0, "expired": 1, "revoked": 2}

KEY_FIELDS = ("api_key_id", "user_id", "org_id", "status", "scopes", "expires_at")
ORG_FIELDS = ("balance", "status", "version", "low_threshold", "plan")

_circuit_open_until: dict[int, float] = {}


# --- Reading the database ------------------------------------------------------------------


def _key_queryset():
    from apikeys.models import ApiKey

    return ApiKey.objects.order_by("pk").values_list(
        "pk", "key_hash", "created_by_id", "organization_id", "status", "scopes", "expires_at"
    )


def _org_queryset():
    from credits.models import Account

    return (
        Account.objects.filter(kind=Account.Kind.CUSTOMER)
        .order_by("organization_id")
        .values_list("organization_id", "balance", "status", "version", "low_credit_threshold", "organization__plan_id")
    )


def iso(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def key_hash_fields(row: tuple, now: datetime) -> tuple[str, dict[str, str]]:
    """(Redis key, fields) for a row of `_key_queryset`. A key past expires_at is `expired` at once."""
    pk, key_hash, user_id, org_id, status, scopes, expires_at = row
    if status == "active" and expires_at is not None and expires_at <= now:
        status = "expired"
    return redis_key("key", key_hash), {
        "api_key_id": str(pk),
        "user_id": str(user_id),
        "org_id": str(org_id),
        "status": status,
        "scopes": ",".join(scopes or []),
        "expires_at": iso(expires_at),
    }


def org_hash_fields(row: tuple) -> tuple[str, dict[str, str]]:
    org_id, balance, status, version, low_threshold, plan = row
    return redis_key("org", org_id), {
        "balance": str(balance),
        "status": status,
        "version": str(version),
        "low_threshold": "" if low_threshold is None else str(low_threshold),
        "plan": plan or "free",
    }


# `_load` of org hashes on PostgreSQL: what _org_queryset reads, with the outbox stamps, as
# one prepared statement (building the ORM query cost more CPU than the rest of a push).
_LOAD_ORGS_SQL = """
SELECT a.organization_id, a.balance, a.status, a.version, a.low_credit_threshold, o.plan_code, ob.changed_at
  FROM credits_account AS a
  JOIN accounts_organization AS o ON o.id = a.organization_id
  LEFT JOIN core_outboxitem AS ob ON ob.topic = 'org' AND ob.object_id = a.organization_id
 WHERE a.kind = 'customer' AND a.organization_id = ANY(%s::bigint[])
 ORDER BY a.organization_id
"""


def _load(topic: str, ids: list[int]) -> tuple[list[tuple], list[tuple[int, datetime]]]:
    """The objects' current state and their outbox stamps, read in one query (one snapshot).

    Returns (rows, [(object id, stamp)]); an object with no outbox row has no stamp.
    """
    if topic == OutboxItem.Topic.ORG and connection.vendor == "postgresql":
        loaded = fetchall_prepared(_LOAD_ORGS_SQL, [pg_array(ids)])
        return [row[:-1] for row in loaded], [(row[0], row[-1]) for row in loaded if row[-1] is not None]
    if topic == OutboxItem.Topic.KEY:
        queryset, id_field = _key_queryset().filter(pk__in=ids), "pk"
    elif topic == OutboxItem.Topic.ORG:
        queryset, id_field = _org_queryset().filter(organization_id__in=ids), "organization_id"
    else:
        raise ValueError(f"unknown outbox topic {topic!r}")
    stamp = OutboxItem.objects.filter(topic=topic, object_id=OuterRef(id_field)).values("changed_at")[:1]
    loaded = list(queryset.annotate(outbox_stamp=Subquery(stamp)))
    return [row[:-1] for row in loaded], [(row[0], row[-1]) for row in loaded if row[-1] is not None]


def _chunks(queryset, size: int = BATCH_SIZE) -> Iterator[list[tuple]]:
    batch: list[tuple] = []
    for row in queryset.iterator(chunk_size=size):
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- Writing Redis -------------------------------------------------------------------------


def write_hashes(client: redis.Redis, topic: str, rows: Iterable[tuple], *, force: bool = False) -> int:
    """Write the hashes of `rows` in one pipeline through the compare-and-set scripts.

    Returns how many were written (a hash holding a newer version or a later key status is
    left alone). `force` replaces hashes outright: only for `redis_resync --force` after a
    database restore, when Redis may hold versions the database never reached.
    """
    if topic == OutboxItem.Topic.KEY:
        now = timezone.now()
        script, field_names = client.register_script(KEY_CAS_LUA), KEY_FIELDS
        items = [key_hash_fields(row, now) for row in rows]
    else:
        script, field_names = client.register_script(ORG_CAS_LUA), ORG_FIELDS
        items = [org_hash_fields(row) for row in rows]
    if not items:
        return 0
    pipe = client.pipeline(transaction=False)
    if force:
        for name, fields in items:
            pipe.delete(name)
            pipe.hset(name, mapping=fields)
        pipe.execute()
        return len(items)
    for start in range(0, len(items), SCRIPT_BATCH):
        chunk = items[start : start + SCRIPT_BATCH]
        args = [fields[field] for _, fields in chunk for field in field_names]
        script(keys=[name for name, _ in chunk], args=args, client=pipe)
    return sum(int(result) for result in pipe.execute())


def _circuit_is_open(client: redis.Redis) -> bool:
    return _circuit_open_until.get(id(client), 0.0) > time.monotonic()


def push_changes(topic: str, object_ids: Iterable[int], *, from_drain: bool = False) -> bool:
    """Publish the current state of these objects and mark their outbox rows pushed.

    Returns False when Redis could not be written (the rows stay pending for the drain).
    """
    ids = sorted(set(object_ids))
    if not ids:
        return True
    client = get_redis()
    if client is None:
        OutboxItem.objects.pending().filter(topic=topic, object_id__in=ids).update(pushed_at=F("changed_at"))
        return True
    if not from_drain and _circuit_is_open(client):
        return False
    # State and stamps come from one snapshot: a change that commits after it has a newer
    # stamp, so its row stays pending below and its own push (or the drain) carries it.
    rows, stamps = _load(topic, ids)
    try:
        write_hashes(client, topic, rows)
    except redis.RedisError as exc:
        _circuit_open_until[id(client)] = time.monotonic() + CIRCUIT_OPEN_SECONDS
        logger.warning("Redis publish of %s %s failed, the outbox keeps them: %s", topic, ids, exc)
        return False
    _circuit_open_until.pop(id(client), None)
    _mark_pushed(topic, stamps)
    return True


# Rows locked by a transaction that is re-stamping them are skipped, not waited for: that
# transaction's commit pushes again and leaves its row pending. Waiting could deadlock with
# a batch that holds some of these rows and waits for others (the rows are locked in any
# order). Rows already marked are left alone: an update that changes nothing still writes
# a new row version.
_MARK_PUSHED_SQL = """
UPDATE core_outboxitem
   SET pushed_at = changed_at
 WHERE id IN (SELECT o.id
                FROM core_outboxitem AS o
                JOIN unnest(%s::bigint[], %s::timestamptz[]) AS pushed (object_id, changed_at)
                  ON o.object_id = pushed.object_id AND o.changed_at = pushed.changed_at
               WHERE o.topic = %s AND o.pushed_at IS DISTINCT FROM o.changed_at
                 FOR NO KEY UPDATE OF o SKIP LOCKED)
"""


def _mark_pushed(topic: str, stamps: list[tuple[int, datetime]]) -> None:
    """Mark pushed the outbox rows whose stamp is still the one pushed."""
    if not stamps:
        return
    if connection.vendor == "postgresql":
        object_ids, changed_ats = zip(*stamps, strict=True)
        execute_prepared(_MARK_PUSHED_SQL, [pg_array(object_ids), pg_array(changed_ats), topic])
        return
    by_stamp: dict[datetime, list[int]] = defaultdict(list)
    for object_id, changed_at in stamps:
        by_stamp[changed_at].append(object_id)
    condition = Q()
    for changed_at, object_ids in by_stamp.items():
        condition |= Q(changed_at=changed_at, object_id__in=object_ids)
    OutboxItem.objects.pending().filter(condition, topic=topic).update(pushed_at=F("changed_at"))


# --- Publishing after commit ---------------------------------------------------------------


class BackgroundPublisher:
    """One thread per process that publishes what the last few milliseconds of commits changed.

    Pushed inline, every request would pay a push of its own: a state read, a Redis script
    and an outbox update, three round trips for one organization (about half of a usage
    report's time, profiled). Here a request only adds ids to a set; the thread wakes,
    lingers `linger` seconds for more and pushes everything pending with one read, one
    pipeline and one update per topic. The outbox row written with each change keeps it
    safe: what a dying process never pushed, the drain does. At exit the pending ids are
    pushed by the exiting thread, so Redis still follows within the contract's second.
    """

    def __init__(self, linger: float) -> None:
        self.linger = linger
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        # A forked child (a web server worker) starts empty, with its own lock and no thread.
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending: dict[str, set[int]] = {}
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    def submit(self, topic: str, object_ids: Iterable[int]) -> None:
        with self._lock:
            self._pending.setdefault(topic, set()).update(object_ids)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="redis-publisher", daemon=True)
                self._thread.start()
                atexit.register(self.flush)
        self._wake.set()

    def _run(self) -> None:
        try:
            while not self._stopped.is_set():
                self._wake.wait()
                self._stopped.wait(self.linger)  # gather more changes, unless stopping
                self._wake.clear()
                self.flush()
            self.flush()  # what came in while stopping
        finally:
            connection.close()

    def stop(self) -> None:
        """Push what is pending and end the thread, closing its database connection."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def flush(self) -> None:
        """Push everything pending, now, from the calling thread."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for topic, ids in pending.items():
            try:
                connection.close_if_unusable_or_obsolete()
                push_changes(topic, ids)
            except Exception:
                # The outbox rows stay: the drain pushes them.
                logger.exception("background publish of %s %s failed", topic, sorted(ids))
                connection.close()


_background: BackgroundPublisher | None = None


def publish_in_background(linger: float) -> None:
    """Hand this process's after-commit pushes to a BackgroundPublisher (0: push inline)."""
    global _background
    _background = BackgroundPublisher(linger) if linger > 0 else None


def publish(topic: str, object_ids: Iterable[int]) -> None:
    """Publish these objects after their commit: inline, or through the background publisher."""
    if _background is not None and get_redis() is not None:
        _background.submit(topic, object_ids)
    else:
        push_changes(topic, object_ids)


def drain_outbox(*, batch_size: int = 500, max_batches: int = 200) -> dict[str, Any]:
    """Push what after-commit pushes left behind (lost with a process, or Redis was down)."""
    pushed = 0
    for _ in range(max_batches):
        batch = list(
            OutboxItem.objects.pending().order_by("changed_at", "pk").values_list("topic", "object_id")[:batch_size]
        )
        if not batch:
            break
        by_topic: dict[str, list[int]] = defaultdict(list)
        for topic, object_id in batch:
            by_topic[topic].append(object_id)
        for topic, ids in by_topic.items():
            if not push_changes(topic, ids, from_drain=True):
                return {"pushed": pushed, "ok": False}
            pushed += len(ids)
        if len(batch) < batch_size:
            break
    return {"pushed": pushed, "ok": True}


# --- Full resync and reconcile -------------------------------------------------------------


def delete_stale_key_hashes(client: redis.Redis, *, scan_count: int = 5000) -> int:
    """Delete `P:key:*` hashes whose key no longer exists in the database."""
    from apikeys.models import ApiKey

    prefix = redis_key("key", "")
    deleted = 0
    batch: list[str] = []

    def flush() -> int:
        hashes = {name[len(prefix) :]: name for name in batch}
        known = set(ApiKey.objects.filter(key_hash__in=list(hashes)).values_list("key_hash", flat=True))
        stale = [name for digest, name in hashes.items() if digest not in known]
        if stale:
            client.delete(*stale)
            for name in stale:
                logger.warning("deleted Redis hash %s: no such API key in the database", name)
        return len(stale)

    for name in client.scan_iter(match=f"{prefix}*", count=scan_count):
        batch.append(name.decode() if isinstance(name, bytes) else name)
        if len(batch) >= scan_count:
            deleted += flush()
            batch = []
    if batch:
        deleted += flush()
    return deleted


def resync(*, force: bool = False, batch_size: int = BATCH_SIZE) -> dict[str, int]:
    """Write every key and org hash (respecting versions unless `force`), delete stale key hashes."""
    client = get_redis()
    if client is None:
        from core.errors import ApplicationError

        raise ApplicationError("Redis publishing is off (REDIS_URL is not set): nothing to resync.")
    keys = sum(write_hashes(client, "key", rows, force=force) for rows in _chunks(_key_queryset(), batch_size))
    orgs = sum(write_hashes(client, "org", rows, force=force) for rows in _chunks(_org_queryset(), batch_size))
    stale = delete_stale_key_hashes(client)
    client.set(_synced_marker(), iso(timezone.now()))
    logger.info("redis resync wrote %s key and %s org hashes, deleted %s stale key hashes", keys, orgs, stale)
    return {"keys": keys, "orgs": orgs, "stale": stale}


def _synced_marker() -> str:
    """A key of the publisher's own (not part of the contract) that every full resync sets:
    gone, Redis has lost what it held."""
    return redis_key("publisher", "synced")


def restore_if_emptied() -> bool:
    """Write every hash again when Redis has lost what it held (restarted without persistence,
    flushed), which the missing marker of the last full resync tells even after pushes have
    written a few hashes again. Returns whether it did. The drain task calls it every 30 s,
    so Redis is back in line within the contract's 60 seconds of its return; a lone missing
    hash is the hourly reconcile's. One restore at a time (a Redis lock, released when done
    or after 10 minutes), and a failed one is logged, not raised: the drain still runs."""
    client = get_redis()
    if client is None:
        return False
    lock = redis_key("publisher", "restoring")
    try:
        if client.exists(_synced_marker()) or not client.set(lock, "1", nx=True, ex=600):
            return False
    except redis.RedisError as exc:
        logger.warning("Redis check for lost hashes failed: %s", exc)
        return False
    logger.warning(
        "Redis has lost the publisher's marker (restarted empty, flushed, or never synced): writing every hash"
    )
    try:
        resync()
    except Exception:
        logger.exception("restoring Redis failed; the next drain tries again")
        return False
    finally:
        with contextlib.suppress(redis.RedisError):  # else it expires by itself
            client.delete(lock)
    return True


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _read_hashes(client: redis.Redis, names: list[str]) -> list[dict[str, str]]:
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(name)
    return [{_text(k): _text(v) for k, v in stored.items()} for stored in pipe.execute()]


def reconcile() -> dict[str, int]:
    """Compare every hash with PostgreSQL, repair and log each difference (idempotent).

    A hash that is ahead of the database (a higher org version, a later key status) is
    logged as an error and left alone: a write never moves Redis backwards.
    """
    client = get_redis()
    if client is None:
        return {"checked": 0, "repaired": 0, "ahead": 0, "stale": 0}
    now = timezone.now()
    counts = {"checked": 0, "repaired": 0, "ahead": 0}
    for topic, queryset in (("key", _key_queryset()), ("org", _org_queryset())):
        for rows in _chunks(queryset, 2000):
            built = [key_hash_fields(row, now) if topic == "key" else org_hash_fields(row) for row in rows]
            stored_hashes = _read_hashes(client, [name for name, _ in built])
            to_repair = []
            for row, (_name, fields), stored in zip(rows, built, stored_hashes, strict=True):
                counts["checked"] += 1
                diff = {name: (stored.get(name), value) for name, value in fields.items() if stored.get(name) != value}
                if not diff:
                    continue
                label = f"{topic} {row[0]}"
                if _is_ahead(topic, fields, stored):
                    counts["ahead"] += 1
                    logger.error("Redis %s is ahead of the database, left alone: %s", label, _describe(diff))
                    continue
                logger.warning("Redis %s differs from the database, repairing: %s", label, _describe(diff))
                to_repair.append(row)
            if to_repair:
                counts["repaired"] += write_hashes(client, topic, to_repair)
    counts["stale"] = delete_stale_key_hashes(client)
    if any(counts[name] for name in ("repaired", "ahead", "stale")):
        logger.warning("redis reconcile: %s", counts)
    return counts


def _is_ahead(topic: str, fields: dict[str, str], stored: dict[str, str]) -> bool:
    if topic == "key":
        stored_rank = KEY_STATUS_RANK.get(stored.get("status", ""), -1)
        return stored_rank > KEY_STATUS_RANK[fields["status"]]
    try:
        return int(stored.get("version", "")) > int(fields["version"])
    except ValueError:
        return False


def _describe(diff: dict[str, tuple[str | None, str]]) -> str:
    return ", ".join(f"{field}: redis={old!r} db={new!r}" for field, (old, new) in sorted(diff.items()))
