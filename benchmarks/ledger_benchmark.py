"""Ledger benchmark: spends per second, the pgbench TPC-B yardstick, and balance reads.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/creditdesk python benchmarks/ledger_benchmark.py

Works in two scratch databases next to DATABASE_URL's (`<name>_ledger_bench`, migrated
from scratch, and `<name>_pgbench`), dropped at the end unless --keep; the ledger is
append-only, so the benchmark never writes into the real database.

1. spends/s: `--workers` processes (default 8) call `credits.services.spend_credits`
   for `--seconds`, each spend a full posting (transaction row, wallet update, two
   entries, outbox row, commit), spread at random over `--wallets` wallets (default
   1,000), then all on one hot wallet;
2. pgbench's built-in TPC-B (`pgbench -i -s 10`, then `pgbench -c 8 -j 2 -T 15`): the
   same debit-plus-history work without Django, as the yardstick;
3. a balance read (`credits.selectors.get_balance`, the stored balance) on a wallet with
   10 entries and on one with 1,000,000 (bulk-loaded with generate_series as zero-sum
   transactions; the zero-sum trigger is off during the load and `verify_ledger` checks
   the result), and for comparison a SUM over the same entries.

Prints one line per figure and a JSON object last.
"""

import argparse
import json
import multiprocessing
import os
import random
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from steal import cpu_times, describe, steal_share  # benchmarks/steal.py and tpcb.py, beside this script
from tpcb import tpcb_tps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _url_with_db(url: str, name: str) -> str:
    parsed = urlparse(url)
    return urlunparse(parsed._replace(path=f"/{name}"))


def _admin_execute(url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(_url_with_db(url, "postgres"), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def _setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("CREDITDESK_READ_DOTENV", "0")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("SECRET_KEY", "ledger-benchmark-only-not-a-secret-0123456789abcdef")
    import django

    django.setup()


def _worker(url: str, org_ids: list[int], seconds: float, start_at: float, queue, without_push: bool) -> None:
    _setup_django(url)
    import core.publisher

    if without_push:
        # The ledger alone: the after-commit Redis push (and its outbox-row delete) is skipped.
        core.publisher.push_changes = lambda *args, **kwargs: True
    else:
        # Each worker publishes as a web server process does (config.wsgi): one background
        # thread gathers the pushes of the spends committed in the last few milliseconds.
        from django.conf import settings

        core.publisher.publish_in_background(settings.REDIS_PUBLISH_LINGER_SECONDS)
    from accounts.models import Organization
    from credits.errors import InsufficientCredits
    from credits.services import spend_credits

    # Wallets loaded with their organizations, as a request loads its organization once.
    organizations = list(Organization.objects.filter(pk__in=org_ids).select_related("wallet"))
    rng = random.Random(os.getpid())
    time.sleep(max(0.0, start_at - time.time()))
    done = refused = 0
    latencies: list[float] = []
    deadline = start_at + seconds
    while time.time() < deadline:
        organization = rng.choice(organizations)
        began = time.perf_counter()
        try:
            spend_credits(organization=organization, amount=1, reason="benchmark")
            done += 1
        except InsufficientCredits:
            refused += 1
        latencies.append(time.perf_counter() - began)
    if core.publisher._background is not None:
        core.publisher._background.stop()
    queue.put((done, refused, latencies))


def spend_rate(url: str, org_ids: list[int], *, workers: int, seconds: float, without_push: bool = False) -> dict:
    from django.db import connections

    connections.close_all()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    start_at = time.time() + 3.0  # let every worker import Django and connect first
    processes = [
        context.Process(target=_worker, args=(url, org_ids, seconds, start_at, queue, without_push))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    ticks = cpu_times()
    results = [queue.get() for _ in processes]
    ticks_after = cpu_times()
    for process in processes:
        process.join()
    done = sum(result[0] for result in results)
    latencies = sorted(latency for result in results for latency in result[2])
    return {
        "spends_per_second": round(done / seconds, 1),
        "spends": done,
        "refused": sum(result[1] for result in results),
        "p50_ms": round(statistics.median(latencies) * 1000, 2) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2) if latencies else None,
        "steal": _rounded(steal_share(ticks, ticks_after)),
    }


def _rounded(share: float | None) -> float | None:
    return None if share is None else round(share, 3)


def bulk_load_entries(wallet_id: int, count: int) -> None:
    """`count` one-credit promotional grants on a wallet, as SQL: zero-sum transactions, chained balances."""
    from django.db import connection, transaction

    from credits import system_accounts
    from credits.selectors import get_system_account

    source = get_system_account(system_accounts.PROMOTION_GRANTS).pk
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("ALTER TABLE credits_entry DISABLE TRIGGER credits_entry_zero_sum")
        cursor.execute(
            "INSERT INTO credits_transaction (id, kind, fingerprint, memo, metadata, created_at) "
            "SELECT md5('bench' || %s || '-' || g)::uuid, 'promotion', '', 'bulk load', '{}'::jsonb, now() "
            "FROM generate_series(1, %s) AS g",
            [wallet_id, count],
        )
        cursor.execute(
            "INSERT INTO credits_entry (transaction_id, account_id, amount, balance_after, created_at) "
            "SELECT md5('bench' || %s || '-' || g)::uuid, %s, -1, NULL, now() FROM generate_series(1, %s) AS g",
            [wallet_id, source, count],
        )
        cursor.execute(
            "INSERT INTO credits_entry (transaction_id, account_id, amount, balance_after, created_at) "
            "SELECT md5('bench' || %s || '-' || g)::uuid, %s, 1, b.balance + g, now() "
            "FROM generate_series(1, %s) AS g, (SELECT balance FROM credits_account WHERE id = %s) AS b",
            [wallet_id, wallet_id, count, wallet_id],
        )
        cursor.execute(
            "UPDATE credits_account SET balance = balance + %s, version = version + %s WHERE id = %s",
            [count, count, wallet_id],
        )
    # After commit: the (deferred) foreign-key checks of the load are still pending until then.
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE credits_entry ENABLE TRIGGER credits_entry_zero_sum")
        cursor.execute("ANALYZE credits_entry")


def read_times(organization_id: int, wallet_id: int, reads: int) -> dict:
    from django.db import connection

    from credits.selectors import get_balance

    get_balance(organization_id=organization_id)
    samples = []
    for _ in range(reads):
        began = time.perf_counter()
        get_balance(organization_id=organization_id)
        samples.append(time.perf_counter() - began)
    sums = []
    with connection.cursor() as cursor:
        for _ in range(5):
            began = time.perf_counter()
            cursor.execute("SELECT SUM(amount) FROM credits_entry WHERE account_id = %s", [wallet_id])
            cursor.fetchone()
            sums.append(time.perf_counter() - began)
    return {
        "balance_read_ms": round(statistics.median(samples) * 1000, 3),
        "balance_read_p99_ms": round(sorted(samples)[int(reads * 0.99)] * 1000, 3),
        "sum_over_entries_ms": round(statistics.median(sums) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--wallets", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--big-history", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--without-push", action="store_true", help="also measure both rates without the after-commit outbox push"
    )
    args = parser.parse_args()

    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith(("postgres://", "postgresql://")):
        sys.exit("Set DATABASE_URL to a PostgreSQL database (the benchmark works in scratch databases next to it).")
    scratch = f"{urlparse(base_url).path.lstrip('/')}_ledger_bench"
    url = _url_with_db(base_url, scratch)
    _admin_execute(base_url, f'DROP DATABASE IF EXISTS "{scratch}"', f'CREATE DATABASE "{scratch}"')
    figures: dict = {"workers": args.workers, "seconds": args.seconds}
    try:
        _setup_django(url)
        from django.core.management import call_command

        print(f"migrating the scratch database {scratch} ...", flush=True)
        call_command("migrate", verbosity=0)

        from accounts.services import create_organization
        from credits.selectors import get_wallet, verify_ledger
        from credits.services import grant_credits

        organizations = [create_organization(name=f"Bench {n}", slug=f"bench-{n}") for n in range(args.wallets)]
        for organization in organizations:
            grant_credits(organization=organization, amount=10**9, reason="benchmark float")
        org_ids = [organization.pk for organization in organizations]

        spread = spend_rate(url, org_ids, workers=args.workers, seconds=args.seconds)
        print(f"spread over {args.wallets} wallets: {spread['spends_per_second']} spends/s {spread}", flush=True)
        hot = spend_rate(url, org_ids[:1], workers=args.workers, seconds=args.seconds)
        print(f"one hot wallet:              {hot['spends_per_second']} spends/s {hot}", flush=True)
        if args.without_push:
            for name, ids in [("spread_without_push", org_ids), ("hot_without_push", org_ids[:1])]:
                figures[name] = spend_rate(url, ids, workers=args.workers, seconds=args.seconds, without_push=True)
                print(f"{name}: {figures[name]['spends_per_second']} spends/s {figures[name]}", flush=True)
        ticks = cpu_times()
        tps = tpcb_tps(base_url, int(args.seconds), scratch=f"{urlparse(base_url).path.lstrip('/')}_pgbench")
        pgbench_steal = steal_share(ticks, cpu_times())
        print(f"pgbench TPC-B (-c 8 -j 2):   {tps} tps ({describe(pgbench_steal)})", flush=True)
        figures.update(spread=spread, hot=hot, pgbench_tps=tps, pgbench_steal=_rounded(pgbench_steal))
        figures["spread_vs_tpcb"] = round(spread["spends_per_second"] / tps, 3)
        figures["hot_vs_spread"] = round(hot["spends_per_second"] / spread["spends_per_second"], 3)

        small, big = create_organization(name="Small history"), create_organization(name="Big history")
        for amount in range(1, 11):
            grant_credits(organization=small, amount=amount, reason="ten entries")
        big_wallet = get_wallet(organization=big)
        began = time.perf_counter()
        bulk_load_entries(big_wallet.pk, args.big_history)
        print(f"bulk-loaded {args.big_history} entries in {time.perf_counter() - began:.1f} s", flush=True)
        figures["read_10_entries"] = read_times(small.pk, get_wallet(organization=small).pk, 2000)
        figures["read_big_history"] = read_times(big.pk, big_wallet.pk, 2000)
        print(f"balance read, 10 entries:    {figures['read_10_entries']}", flush=True)
        print(f"balance read, {args.big_history} entries: {figures['read_big_history']}", flush=True)

        began = time.perf_counter()
        check = verify_ledger()
        figures["ledger_verify_seconds"] = round(time.perf_counter() - began, 2)
        figures["ledger_verify_ok"] = check.ok
        figures["ledger_transactions"] = check.transactions
        print(
            f"verify_ledger over {check.transactions} transactions: ok={check.ok} "
            f"in {figures['ledger_verify_seconds']} s",
            flush=True,
        )
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            _admin_execute(base_url, f'DROP DATABASE IF EXISTS "{scratch}"')
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
