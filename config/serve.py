"""The production web server: granian serving config.wsgi (`python -m config.serve`).

Used by `make serve-prod`, the Dockerfile, docker-compose.yml and the benchmarks. granian
handles HTTP in Rust and runs the WSGI application in a pool of Python threads per worker
process. On the usage write path its workers spent 8-14 % less CPU a report than gunicorn's
gthread workers, in alternating pairs on one machine (benchmarks/README.md, "Tenth sitting").

Settings, from the environment (or `.env`, as config.settings reads it):
- HOST (127.0.0.1) and PORT (8000): where to listen;
- WEB_CONCURRENCY (2): worker processes, each with its own copy of the application;
- WEB_THREADS (16): Python threads per worker, each with its own database connection; as
  many requests run at once per worker, more wait for a free thread. It does not cap open
  connections: granian's `backpressure`, which counts every accepted connection, idle
  keep-alive ones included, stays at its default (1,024 / workers). Set to the thread count,
  34 idle connections starved two workers of 16;
- WEB_THREADS_IDLE_TIMEOUT (30, granian's default; 5 to 600): seconds after which an idle
  thread ends, and with it its database connection (core.wsgi.CloseConnectionsOnThreadExit);
  the next burst opens new ones. So a worker holds at most WEB_THREADS connections;
- WEB_ACCESS_LOG (on): one line a request on stdout, the path only, never the query string,
  with tokens in the path redacted (core.logging.RedactAccessLogPath): clients put API keys
  in URLs (`?key=cdk_live_...`), and invitation and password-reset links carry their secret
  in the path.

A worker that dies is started again (granian recommends `sysctl net.ipv4.tcp_migrate_req=1`
so that connections queued meanwhile are not reset); on SIGTERM the workers finish their
requests, for up to 30 seconds.

granian, unlike gunicorn, passes on request headers whose names contain underscores, as if
they had dashes (`X_Forwarded_For` arrives as HTTP_X_FORWARDED_FOR). Behind a proxy, with
TRUST_X_FORWARDED_PROTO or TRUSTED_PROXY_COUNT set, the proxy must drop such headers
(nginx does by default: `underscores_in_headers off`).
"""

import os
from pathlib import Path

import environ
from granian.constants import Interfaces
from granian.log import LogLevels
from granian.server import Server

ACCESS_LOG_FORMAT = '%(addr)s [%(time)s] "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).0fms'

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_path": {"()": "core.logging.RedactAccessLogPath"}},
    "formatters": {
        "server": {"format": "[granian] %(levelname)s %(message)s"},
        "access": {"format": "%(message)s"},
    },
    "handlers": {
        "server": {"class": "logging.StreamHandler", "formatter": "server", "stream": "ext://sys.stderr"},
        "access": {
            "class": "logging.StreamHandler",
            "formatter": "access",
            "filters": ["redact_path"],
            "stream": "ext://sys.stdout",
        },
    },
    "loggers": {
        "_granian": {"handlers": ["server"], "level": "INFO", "propagate": False},
        "granian.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}


DOTENV = Path(__file__).resolve().parent.parent / ".env"


def build_server(env: environ.Env | None = None) -> Server:
    if env is None:
        # As config.settings reads it: the process environment wins over the file.
        if os.environ.get("CREDITDESK_READ_DOTENV", "1") == "1" and DOTENV.exists():
            environ.Env.read_env(DOTENV)
        env = environ.Env()
    return Server(
        "config.wsgi:application",
        interface=Interfaces.WSGI,
        websockets=False,
        address=env.str("HOST", default="127.0.0.1"),
        port=env.int("PORT", default=8000),
        workers=env.int("WEB_CONCURRENCY", default=2),
        blocking_threads=env.int("WEB_THREADS", default=16),
        blocking_threads_idle_timeout=env.int("WEB_THREADS_IDLE_TIMEOUT", default=30),
        log_level=LogLevels.info,
        log_dictconfig=LOGGING,
        log_access=env.bool("WEB_ACCESS_LOG", default=True),
        log_access_format=ACCESS_LOG_FORMAT,
        respawn_failed_workers=True,
        workers_kill_timeout=30,
    )


if __name__ == "__main__":
    build_server().serve()
