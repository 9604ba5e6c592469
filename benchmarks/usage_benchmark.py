"""Load benchmark of the usage write path against a running server.

Run it with the server's environment (the same DATABASE_URL and REDIS_URL), from the
project directory; it creates its own customers, API keys, credits and service token
through the manage.py commands (create_customer, grant_credits, create_api_key,
create_service_token), then prints reports/s and p50/p99 latency for:

  spread   single reports from --clients concurrent clients over --wallets wallets
  hot      single reports from --clients concurrent clients, all on one wallet
  batch    batches of --batch-size events (events/s)
  paced    single reports paced at 0.2 x the TPC-B rate (latency at the target rate)
  pgbench  PostgreSQL's built-in TPC-B (-c 8 -j 2 -T 15, scale 10, in a scratch database)

Clients are threads, each with its own keep-alive HTTP/1.1 connection on a plain socket
(see Client), so the client costs little next to the server; on a small machine they still
share its cores.

    python benchmarks/usage_benchmark.py --url http://127.0.0.1:8055

See benchmarks/README.md for the server command and the figures measured here.
"""

import argparse
import json
import os
import random
import shutil
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from urllib.parse import urlsplit

from steal import cpu_times, describe, steal_share  # benchmarks/steal.py, beside this script
from tpcb import tpcb_tps_for

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))


def django_setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def command(name: str, *args: str) -> dict:
    """Run a manage.py command in this process and return its JSON last line."""
    from django.core.management import call_command

    out = StringIO()
    call_command(name, *args, stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


@dataclass
class Customer:
    user_id: int
    api_key_id: int


def create_customers(run: str, count: int, credits: int) -> list[Customer]:
    customers = []
    started = time.perf_counter()
    for n in range(count):
        email = f"bench-{run}-{n}@bench.creditdesk.test"
        created = command("create_customer", email, "--org", f"bench-{run}-{n}")
        command("grant_credits", email, str(credits), "--reason", "benchmark")
        key = command("create_api_key", email, "--name", "bench")
        customers.append(Customer(created["userId"], key["apiKeyId"]))
        if (n + 1) % 100 == 0:
            print(f"  {n + 1}/{count} customers ({time.perf_counter() - started:.0f} s)", flush=True)
    return customers


@dataclass
class Result:
    name: str
    unit: str = "reports"
    events: int = 0
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    steal: float | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000

    def line(self) -> str:
        errors = {status: n for status, n in self.statuses.items() if status not in (200, 201)}
        return (
            f"{self.name:<8} {self.rate:9.1f} {self.unit}/s  p50 {self.percentile(0.5):7.1f} ms  "
            f"p99 {self.percentile(0.99):7.1f} ms  requests {self.requests:6d}  {describe(self.steal)}"
            + (f"  errors {errors}" if errors else "")
        )


class Client:
    """One keep-alive HTTP/1.1 connection over a plain socket.

    The request bytes are put together by hand and only the status line and Content-Length
    of an answer are read: the clients share the server's two cores, and http.client (which
    parses every response header with the email package) cost about a sixth of the machine
    at 700 reports/s. A failed request is sent again once on a new connection, which is safe:
    every report carries an eventId, so a repeat is answered as a duplicate.
    """

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.head = (
            f"Host: {self.address[0]}:{self.address[1]}\r\nAuthorization: Token {token}\r\n"
            "Content-Type: application/json\r\n"
        ).encode()
        self.sock: socket.socket | None = None
        self.buffer = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buffer = None, b""

    def post(self, path: str, body: dict) -> int:
        payload = json.dumps(body).encode()
        length = b"Content-Length: %d\r\n\r\n" % len(payload)
        request = b"".join([b"POST ", path.encode(), b" HTTP/1.1\r\n", self.head, length, payload])
        for attempt in range(2):
            try:
                if self.sock is None:
                    self.sock = socket.create_connection(self.address, timeout=30)
                    self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.sock.sendall(request)
                return self._read_response()
            except OSError:
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _receive(self) -> None:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def _read_response(self) -> int:
        while b"\r\n\r\n" not in self.buffer:
            self._receive()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        if b"content-length" not in headers:
            raise OSError("an answer without Content-Length")
        length = int(headers[b"content-length"])
        while len(self.buffer) < length:
            self._receive()
        self.buffer = self.buffer[length:]
        if headers.get(b"connection") == b"close":
            self.close()
        return status


def run_load(
    name: str,
    *,
    url: str,
    token: str,
    clients: int,
    seconds: float,
    make_request,
    unit: str = "reports",
    rate: float | None = None,
) -> Result:
    """`clients` threads send `make_request(thread, n)` -> (path, body, events) for `seconds`.

    Closed loop (as fast as answers come) unless `rate` (requests/s over all clients) is
    given: then each request has a scheduled start and latency counts from it."""
    result = Result(name, unit)
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def work(thread: int) -> None:
        client = Client(url, token)
        latencies, statuses, events, requests = [], {}, 0, 0
        interval = clients / rate if rate else 0.0
        barrier.wait()
        start = time.perf_counter()
        next_at = start + random.random() * interval
        n = 0
        while True:
            if interval:
                now = time.perf_counter()
                if next_at > now:
                    time.sleep(next_at - now)
                began = next_at
                next_at += interval
            else:
                began = time.perf_counter()
            if began >= stop_at[0] or time.perf_counter() >= stop_at[0]:
                break
            path, body, count = make_request(thread, n)
            status = client.post(path, body)
            latencies.append(time.perf_counter() - began)
            statuses[status] = statuses.get(status, 0) + 1
            if status in (200, 201):
                events += count
            requests += 1
            n += 1
        with lock:
            result.latencies += latencies
            result.events += events
            result.requests += requests
            for status, count in statuses.items():
                result.statuses[status] = result.statuses.get(status, 0) + count

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    began, ticks = time.perf_counter(), cpu_times()
    stop_at[0] = began + seconds
    barrier.wait()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - began
    result.steal = steal_share(ticks, cpu_times())
    return result


def pgbench_tps(seconds: int) -> float | None:
    """TPC-B tps on the server's PostgreSQL, or None without PostgreSQL or the pgbench binary."""
    from django.conf import settings

    if not shutil.which("pgbench") or not settings.IS_POSTGRES:
        print("pgbench: skipped (needs PostgreSQL and the pgbench binary)")
        return None
    return tpcb_tps_for(settings.DATABASES["default"], seconds, scratch=f"usage_bench_pgbench_{os.getpid()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8055")
    parser.add_argument("--wallets", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--batch-clients", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--pgbench-seconds", type=int, default=15)
    parser.add_argument("--skip-pgbench", action="store_true")
    parser.add_argument(
        "--tpcb", type=float, help="a TPC-B rate measured before: skips pgbench, paces the paced run at 0.2 x it"
    )
    args = parser.parse_args()

    django_setup()
    run = uuid.uuid4().hex[:8]
    print(f"run {run}: creating {args.wallets} customers, a hot wallet and a service token ...", flush=True)
    customers = create_customers(run, args.wallets, 10**9)
    hot = create_customers(f"{run}-hot", 1, 10**11)[0]
    token = command("create_service_token", f"bench-{run}")["token"]
    from django.db import connections

    connections.close_all()

    ticks = cpu_times()
    tps = args.tpcb or (None if args.skip_pgbench else pgbench_tps(args.pgbench_seconds))
    pgbench_steal = steal_share(ticks, cpu_times()) if tps and not args.tpcb else None

    def single(target_of):
        def make(thread: int, n: int):
            customer = target_of()
            body = {
                "userId": customer.user_id,
                "apiKeyId": customer.api_key_id,
                "creditsUsed": 1,
                "queryType": "standard",
                "eventId": f"b-{run}-{thread}-{n}-{uuid.uuid4().hex[:6]}",
            }
            return "/api/usage/report", body, 1

        return make

    def batch(thread: int, n: int):
        events = []
        for m in range(args.batch_size):
            customer = random.choice(customers)
            events.append(
                {
                    "userId": customer.user_id,
                    "apiKeyId": customer.api_key_id,
                    "creditsUsed": 1,
                    "queryType": "standard",
                    "eventId": f"bb-{run}-{thread}-{n}-{m}",
                }
            )
        return "/api/usage/report/batch", {"events": events}, args.batch_size

    common = {"url": args.url, "token": token, "seconds": args.seconds}
    # A short warm-up fills the workers' connections and token caches.
    anyone = single(lambda: random.choice(customers))
    run_load("warm-up", clients=args.clients, make_request=anyone, **{**common, "seconds": 3})
    results = [
        run_load("spread", clients=args.clients, make_request=single(lambda: random.choice(customers)), **common),
        run_load("hot", clients=args.clients, make_request=single(lambda: hot), **common),
    ]
    paced = None
    if tps:
        # Single reports at the target rate, after the other single-report runs and before
        # the batches, so it does not measure what the batches leave the server doing.
        anywhere = single(lambda: random.choice(customers))
        paced = run_load("paced", clients=args.clients, make_request=anywhere, rate=0.2 * tps, **common)
    results.append(run_load("batch", clients=args.batch_clients, make_request=batch, unit="events", **common))
    if paced:
        results.append(paced)

    print()
    for result in results:
        print(result.line())
    spread, hot_result, batch_result = results[:3]
    if tps:
        measured = f"-c 8 -j 2 -T {args.pgbench_seconds}, scale 10, {describe(pgbench_steal)}"
        print(f"pgbench  {tps:9.1f} tps (TPC-B, {measured if not args.tpcb else 'given with --tpcb'})")
        print()
        print(f"spread / TPC-B  = {spread.rate / tps:5.2f}   (target >= 0.20, p99 < 25 ms at that rate: see paced)")
        print(f"hot / spread    = {hot_result.rate / spread.rate:5.2f}   (target >= 0.80)")
        print(f"batch / TPC-B   = {batch_result.rate / tps:5.2f}   (target >= 2.00, events/s)")
        print(f"paced p99       = {paced.percentile(0.99):5.1f} ms at {paced.rate:.0f} reports/s (target < 25 ms)")


if __name__ == "__main__":
    main()
