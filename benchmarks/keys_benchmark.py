"""API-key benchmark: keys verified per second through /api/keys/verify, and `redis_resync` time.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/creditdesk REDIS_URL=redis://127.0.0.1:6379/2 \\
        python benchmarks/keys_benchmark.py [--keys 100000] [--seconds 15] [--clients 8] [--keep]

Works in a scratch database next to DATABASE_URL's (`<name>_keys_bench`, migrated from
scratch, dropped at the end unless --keep) and under its own Redis key prefix
(`keysbench`, deleted at the end), so it never touches real data.

1. Setup: one organization with credits, a service token, and `--keys` API keys
   bulk-created (SHA-256 hashes of fresh random keys; a sample of the raw keys is kept in
   memory for step 3).
2. `redis_resync` from an empty Redis: in-process (`core.publisher.resync`) and as the
   `manage.py redis_resync` command (process start included). Target: < 10 s for 100,000.
3. Verify throughput: the production server (`python -m config.serve`: granian, `--workers`
   x `--threads`, no access log) serving the project with DEBUG off; `--clients` threads
   with keep-alive connections POST random sample keys (a tenth of them unknown) to
   /api/keys/verify for `--seconds`; the server is stopped after.

Prints one line per figure and a JSON object last.
"""

import argparse
import hashlib
import http.client
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
REDIS_PREFIX = "keysbench"


def _url_with_db(url: str, name: str) -> str:
    return urlunparse(urlparse(url)._replace(path=f"/{name}"))


def _admin_execute(url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(_url_with_db(url, "postgres"), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def _environment(db_url: str, redis_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": REDIS_PREFIX,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "CREDITDESK_READ_DOTENV": "0",
        "CREDITDESK_TESTING": "0",
        "LOG_LEVEL": "WARNING",
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECRET_KEY": "keys-benchmark-only-not-a-secret-0123456789abcdef",
        "CONN_MAX_AGE": "600",
    }


def _manage(env: dict[str, str], *args: str) -> tuple[str, float]:
    began = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "", elapsed


def _setup(key_count: int, sample_size: int) -> tuple[str, list[str]]:
    """Organization, credits, service token and `key_count` keys; returns (token, sample raw keys)."""
    import django

    django.setup()
    from django.db import connection

    from accounts.services import create_customer
    from apikeys.models import ApiKey
    from apikeys.services import create_service_account, generate_raw_key
    from credits.services import grant_credits

    owner = create_customer(email="bench@keys.test", password=None, org_slug="keys-bench")
    organization = owner.membership.organization
    grant_credits(organization=organization, amount=1_000_000, reason="benchmark")
    _user, token = create_service_account(name="keys-bench")

    samples: list[str] = []
    batch: list[ApiKey] = []
    began = time.perf_counter()
    for index in range(key_count):
        raw = generate_raw_key()
        if index < sample_size:
            samples.append(raw)
        batch.append(
            ApiKey(
                organization=organization,
                created_by=owner,
                name=f"bench {index}",
                prefix=raw[:12],
                key_hash=hashlib.sha256(raw.encode()).hexdigest(),
                scopes=["query"],
            )
        )
        if len(batch) == 5000:
            ApiKey.objects.bulk_create(batch)
            batch = []
    if batch:
        ApiKey.objects.bulk_create(batch)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE apikeys_apikey")
    print(f"setup: {key_count:,} keys bulk-created in {time.perf_counter() - began:.1f} s", flush=True)
    return token, samples


def _clear_redis(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    names = list(client.scan_iter(match=f"{REDIS_PREFIX}:*", count=10_000))
    for start in range(0, len(names), 10_000):
        client.delete(*names[start : start + 10_000])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(port: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("the server did not become ready")


def _load(port: int, token: str, keys: list[str], seconds: float, clients: int) -> dict[str, float]:
    counts = {"ok": 0, "errors": 0}
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.time() + seconds

    def client(index: int) -> None:
        rng = random.Random(index)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        ok = errors = 0
        mine: list[float] = []
        while time.time() < deadline:
            key = rng.choice(keys) if rng.random() > 0.1 else "cdk_live_" + secrets.token_urlsafe(32)
            began = time.perf_counter()
            try:
                conn.request("POST", "/api/keys/verify", body=json.dumps({"key": key}), headers=headers)
                response = conn.getresponse()
                body = response.read()
                if response.status == 200 and b'"valid"' in body:
                    ok += 1
                    mine.append(time.perf_counter() - began)
                else:
                    errors += 1
            except (OSError, http.client.HTTPException):
                errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        with lock:
            counts["ok"] += ok
            counts["errors"] += errors
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "per_second": counts["ok"] / elapsed,
        "verified": counts["ok"],
        "errors": counts["errors"],
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    base_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    if not base_url.startswith("postgres") or not redis_url:
        raise SystemExit("Set DATABASE_URL (PostgreSQL) and REDIS_URL.")
    scratch = f"{urlparse(base_url).path.lstrip('/')}_keys_bench"
    db_url = _url_with_db(base_url, scratch)
    env = _environment(db_url, redis_url)

    _admin_execute(base_url, f'DROP DATABASE IF EXISTS "{scratch}"', f'CREATE DATABASE "{scratch}"')
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}", flush=True)
    server = None
    try:
        _, migrate_seconds = _manage(env, "migrate", "--noinput")
        print(f"setup: scratch database {scratch} migrated in {migrate_seconds:.0f} s", flush=True)
        os.environ.update(env)
        token, samples = _setup(args.keys, 2000)

        from core.publisher import resync

        _clear_redis(redis_url)
        began = time.perf_counter()
        written = resync()
        resync_seconds = time.perf_counter() - began
        print(
            f"redis_resync (in process) of {written['keys']:,} keys and {written['orgs']} orgs from an empty Redis: "
            f"{resync_seconds:.2f} s",
            flush=True,
        )
        _clear_redis(redis_url)
        output, command_seconds = _manage(env, "redis_resync")
        print(f"manage.py redis_resync (process start included): {command_seconds:.2f} s -> {output}", flush=True)
        _, again_seconds = _manage(env, "redis_resync")
        print(f"manage.py redis_resync over a full Redis (nothing newer to write): {again_seconds:.2f} s", flush=True)

        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "config.serve"],
            cwd=ROOT,
            env={
                **env,
                "PORT": str(port),
                "WEB_CONCURRENCY": str(args.workers),
                "WEB_THREADS": str(args.threads),
                "WEB_ACCESS_LOG": "0",
            },
            start_new_session=True,
        )
        _wait_ready(port)
        _load(port, token, samples, 2, args.clients)  # warm-up: connections, token cache
        result = _load(port, token, samples, args.seconds, args.clients)
        print(
            f"/api/keys/verify: {result['per_second']:,.0f} keys verified/s "
            f"({args.clients} clients, granian {args.workers}x{args.threads}, "
            f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, errors {result['errors']})",
            flush=True,
        )
        summary = {
            "load_average": round(os.getloadavg()[0], 1),
            "keys": args.keys,
            "resync_seconds": round(resync_seconds, 2),
            "resync_command_seconds": round(command_seconds, 2),
            "resync_again_seconds": round(again_seconds, 2),
            "resync_under_10s": resync_seconds < 10,
            "verify_per_second": round(result["per_second"], 1),
            "verify_p50_ms": round(result["p50_ms"], 2),
            "verify_p99_ms": round(result["p99_ms"], 2),
            "verify_errors": result["errors"],
        }
        print(json.dumps(summary))
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        _clear_redis(redis_url)
        from django.db import connections

        connections.close_all()
        if not args.keep:
            _admin_execute(base_url, f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')


if __name__ == "__main__":
    main()
