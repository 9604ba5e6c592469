import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def _run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}}
    clean.update({"CREDITDESK_READ_DOTENV": "0", **env})
    if "SECRET_KEY" not in env:
        clean.pop("SECRET_KEY", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


def test_production_refuses_to_start_without_a_secret_key():
    result = _run_manage("check", DEBUG="False")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_check_deploy_is_clean_for_a_production_like_environment(tmp_path):
    result = _run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="False",
        SECRET_KEY="x" * 20 + "a-long-and-random-production-secret-key-value",
        ALLOWED_HOSTS="creditdesk.example.com",
        SQLITE_PATH=str(tmp_path / "deploy.sqlite3"),
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_secrets_can_be_read_from_files(tmp_path):
    secret_file = tmp_path / "secret_key"
    secret_file.write_text("from-a-file-" + "s" * 50 + "\n")
    result = _run_manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.SECRET_KEY)",
        DEBUG="False",
        SECRET_KEY_FILE=str(secret_file),
        ALLOWED_HOSTS="creditdesk.example.com",
        SQLITE_PATH=str(tmp_path / "s.sqlite3"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("from-a-file-" + "s" * 50)


@pytest.mark.skipif(settings.IS_POSTGRES, reason="the embedded default is SQLite")
def test_embedded_sqlite_takes_the_write_lock_when_a_transaction_starts():
    options = settings.DATABASES["default"]["OPTIONS"]
    assert options["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in options["init_command"]


def test_persistent_connections_with_health_checks():
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True


@pytest.mark.parametrize(("configured", "expected"), [(None, "None"), ("none", "None"), ("30", "30")])
def test_postgresql_connections_persist_unless_a_maximum_age_is_set(configured, expected):
    env = {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/unused"}
    if configured is not None:
        env["CONN_MAX_AGE"] = configured
    code = "from django.conf import settings; print(settings.DATABASES['default']['CONN_MAX_AGE'])"
    result = _run_manage("shell", "-c", code, **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == expected
