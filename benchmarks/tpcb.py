"""The yardstick of the benchmarks: pgbench's built-in TPC-B transaction on the same PostgreSQL."""

import os
import re
import subprocess
from urllib.parse import urlparse


def tpcb_tps(database_url: str, seconds: int, *, scratch: str) -> float:
    """tps of `pgbench -c 8 -j 2 -T <seconds>` at scale 10, in the scratch database `scratch`
    (created on the server of `database_url` and dropped afterwards)."""
    parsed = urlparse(database_url)
    return _tpcb_tps(parsed.hostname, parsed.port, parsed.username, parsed.password, seconds, scratch)


def tpcb_tps_for(database: dict, seconds: int, *, scratch: str) -> float:
    """The same for a Django DATABASES entry."""
    return _tpcb_tps(
        database.get("HOST"), database.get("PORT"), database.get("USER"), database.get("PASSWORD"), seconds, scratch
    )


def _tpcb_tps(host, port, user, password, seconds: int, scratch: str) -> float:
    env = {**os.environ, "PGPASSWORD": password or ""}
    server = ["-h", host or "127.0.0.1", "-p", str(port or 5432), "-U", user or "postgres"]
    subprocess.run(["dropdb", *server, "--if-exists", scratch], check=True, env=env)
    subprocess.run(["createdb", *server, scratch], check=True, env=env)
    try:
        subprocess.run(["pgbench", *server, "-i", "-q", "-s", "10", scratch], check=True, env=env, capture_output=True)
        output = subprocess.run(
            ["pgbench", *server, "-c", "8", "-j", "2", "-T", str(seconds), scratch],
            check=True,
            env=env,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        subprocess.run(["dropdb", *server, "--if-exists", scratch], check=False, env=env)
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", output)
    if match is None:
        raise RuntimeError(f"could not read the tps from pgbench:\n{output}")
    return float(match.group(1))
