"""gunicorn's access log (config/gunicorn_settings.py) writes no secret a URL carries.

Found from outside: gunicorn wrote `GET /api/usage?apiKeyId=cdk_live_<full key>` verbatim,
past the Django log's redacting formatter, and invitation links with their token.
"""

import runpy
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings

SETTINGS = runpy.run_path(str(Path(settings.BASE_DIR) / "config" / "gunicorn_settings.py"))


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/api/usage/report", "/api/usage/report"),
        ("/invitations/eyJvcmciOjF9:1uXyZ:abcdefghijklmnopqrstu/", "/invitations/[redacted]/"),
        ("/accounts/confirm-email/MTI:1uXyZ:abcdefghijklmnopqrstuvwxyz/", "/accounts/confirm-email/[redacted]/"),
        ("/accounts/password/reset/key/1-c2v5bd-0123456789abcdef0123/", "/accounts/password/reset/key/[redacted]/"),
        ("/keys/cdk_live_abcdefghij/revoke/", "/keys/cdk_live_[redacted]/revoke/"),
        ("/api/users/123/credits", "/api/users/123/credits"),
    ],
)
def test_the_access_log_redacts_tokens_in_the_path(path, logged):
    assert SETTINGS["redact_path"](path) == logged


def test_the_access_log_line_has_no_query_string_nor_referer():
    class Response:
        status = "200 OK"
        sent = 12
        headers: list = []

    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/api/usage?apiKeyId=cdk_live_SECRETSECRETSECRETSECRET",
        "PATH_INFO": "/api/usage",
        "QUERY_STRING": "apiKeyId=cdk_live_SECRETSECRETSECRETSECRET",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_REFERER": "https://creditdesk.example/invitations/eyJvcmciOjF9:1uXyZ:abcdefghijklmnopqrstu/",
        "REMOTE_ADDR": "10.0.0.1",
    }
    logger = SETTINGS["RedactingAccessLogger"].__new__(SETTINGS["RedactingAccessLogger"])
    atoms = logger.atoms(Response(), {}, environ, timedelta(milliseconds=3))

    line = SETTINGS["access_log_format"] % atoms

    assert line.startswith("10.0.0.1 ") and '"GET /api/usage HTTP/1.1" 200 12 3ms' in line
    assert "SECRET" not in line and "invitations" not in line
