"""The production web server (config/serve.py): granian with an access log that keeps URL secrets out.

Found from outside (with gunicorn, before): the access log wrote `GET /api/usage?apiKeyId=
cdk_live_<full key>` verbatim, past the Django log's redacting formatter, and invitation
links with their token.
"""

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import environ
import pytest
from granian.constants import Interfaces
from granian.log import log_request_builder

from config.serve import ACCESS_LOG_FORMAT, build_server
from core.logging import RedactAccessLogPath

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def access_lines():
    """What granian's access logger writes, through the filter config.serve gives it."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    handler = Collect()
    handler.addFilter(RedactAccessLogPath())
    access_logger = logging.getLogger("granian.access")
    level, propagate = access_logger.level, access_logger.propagate
    access_logger.addHandler(handler)
    access_logger.setLevel(logging.INFO)
    access_logger.propagate = False
    yield lines
    access_logger.removeHandler(handler)
    access_logger.setLevel(level)
    access_logger.propagate = propagate


def test_the_access_log_line_has_the_path_only_with_its_tokens_redacted(access_lines):
    log_request = log_request_builder(ACCESS_LOG_FORMAT)
    request = {
        "addr_remote": "10.0.0.1",
        "protocol": "HTTP/1.1",
        "path": "/invitations/eyJvcmciOjF9:1uXyZ:abcdefghijklmnopqrstu/",
        "qs": "apiKeyId=cdk_live_SECRETSECRETSECRETSECRET",
        "method": "GET",
        "scheme": "https",
    }

    log_request(time.time(), time.perf_counter(), request, 404)

    [line] = access_lines
    assert line.startswith("10.0.0.1 [")
    assert '"GET /invitations/[redacted]/ HTTP/1.1" 404 ' in line and line.endswith("ms")
    assert "SECRET" not in line and "abcdefghijklmnopqrstu" not in line


def test_the_server_takes_its_settings_from_the_environment():
    env = environ.Env()
    env.ENVIRON = {"HOST": "0.0.0.0", "PORT": "9123", "WEB_CONCURRENCY": "3", "WEB_THREADS": "8", "WEB_ACCESS_LOG": "0"}

    server = build_server(env)

    assert (server.bind_addr, server.bind_port) == ("0.0.0.0", 9123)
    assert server.interface == Interfaces.WSGI and server.target == "config.wsgi:application"
    assert (server.workers, server.blocking_threads) == (3, 8)
    assert server.log_access is False
    assert server.respawn_failed_workers is True


def test_the_defaults_are_two_workers_of_sixteen_threads_on_localhost_with_an_access_log():
    env = environ.Env()
    env.ENVIRON = {}

    server = build_server(env)

    assert (server.bind_addr, server.bind_port, server.workers, server.blocking_threads) == ("127.0.0.1", 8000, 2, 16)
    assert server.log_access is True


def test_the_settings_can_come_from_the_dotenv_file(tmp_path, monkeypatch):
    dotenv = tmp_path / ".env"
    dotenv.write_text("WEB_THREADS=7\nPORT=9124\n")
    monkeypatch.setattr("config.serve.DOTENV", dotenv)
    monkeypatch.setenv("CREDITDESK_READ_DOTENV", "1")
    monkeypatch.setenv("PORT", "9125")  # the process environment wins
    monkeypatch.setenv("WEB_THREADS", "")  # recorded, so that what the file sets is undone after
    monkeypatch.delenv("WEB_THREADS")

    server = build_server()

    assert (server.blocking_threads, server.bind_port) == (7, 9125)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(port: int, target: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def test_python_m_config_serve_serves_the_project_and_logs_without_secrets(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}}
    env.update(
        CREDITDESK_READ_DOTENV="0",
        DEBUG="True",
        SQLITE_PATH=str(tmp_path / "serve.sqlite3"),
        PORT=str(port),
        WEB_CONCURRENCY="1",
        WEB_THREADS="2",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "config.serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = _get(port, "/health")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        _get(port, "/invitations/eyJvcmciOjF9:1uXyZ:abcdefghijklmnopqrstu/?key=cdk_live_SECRETSECRETSECRET")
        # Idle connections (keep-alive clients between requests, or ones that never send)
        # must not take the threads' place: found from outside, 34 of them starved 2 x 16.
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(12)]
        try:
            while_idle = _get(port, "/health")
        finally:
            for connection in idle:
                connection.close()
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=60)

    access_log = [line for line in output.splitlines() if line.startswith("127.0.0.1 [")]
    assert health.startswith(b"HTTP/1.1 200") and b'{"status": "ok"}' in health
    assert while_idle.startswith(b"HTTP/1.1 200")
    assert len(access_log) == 3
    assert '"GET /health HTTP/1.1" 200 ' in access_log[0]
    assert '"GET /invitations/[redacted]/ HTTP/1.1" 404 ' in access_log[1]
    assert "SECRET" not in output


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_holds_no_more_database_connections_than_threads_across_idle_pauses():
    """Found from outside: granian ends idle threads, and each burst after a pause left its
    new threads' connections open for good (4 threads held 19), until PostgreSQL refused clients."""
    from django.db import connection

    db = connection.settings_dict
    name = "serve-threads-test"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CELERY_BROKER_URL"}}
    env.update(
        CREDITDESK_READ_DOTENV="0",
        DEBUG="True",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}?application_name={name}",
        PORT=str(port),
        WEB_CONCURRENCY="1",
        WEB_THREADS="2",
        WEB_THREADS_IDLE_TIMEOUT="5",
        WEB_ACCESS_LOG="0",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "config.serve"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, start_new_session=True
    )

    def server_connections() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [name])
            return cursor.fetchone()[0]

    def burst() -> list[bytes]:
        answers: list[bytes] = []
        threads = [threading.Thread(target=lambda: answers.append(_get(port, "/ready"))) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return answers

    counts = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(port, "/health")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        for _ in range(3):
            assert all(answer.startswith(b"HTTP/1.1 200") for answer in burst())
            counts.append(server_connections())
            time.sleep(7)  # past the idle timeout: the threads end
    finally:
        server.terminate()
        server.wait(timeout=60)

    assert counts[0] >= 1
    assert max(counts) <= 2, counts
