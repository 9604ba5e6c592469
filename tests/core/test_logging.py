"""The log lines keep secrets out and cannot be forged (core.logging).

Found from outside: Django's request log wrote a valid invitation's token whole (opened by
the wrong user, it is a 404), and a path with `%0A` wrote a forged line into the access log.
"""

import copy
import logging
import logging.config

import pytest
from django.conf import settings

from accounts import invitations
from accounts.services import invite_member
from core.logging import redact_path


@pytest.fixture
def request_log():
    """The records of Django's request log, and a way to format them as settings.LOGGING does."""
    records: list[logging.LogRecord] = []
    capture = logging.Handler()
    capture.emit = records.append
    logger = logging.getLogger("django.request")
    logger.addHandler(capture)

    def lines(formatter: str) -> list[str]:
        # configure_formatter pops the factory out of the dict it is given.
        config = copy.deepcopy(settings.LOGGING["formatters"][formatter])
        output = logging.config.DictConfigurator({"version": 1}).configure_formatter(config)
        return [output.format(record) for record in records]

    yield lines
    logger.removeHandler(capture)


@pytest.mark.django_db
@pytest.mark.parametrize("formatter", ["plain", "json"])
def test_a_valid_invitation_opened_by_the_wrong_user_is_logged_without_its_token(
    formatter, request_log, owner, organization, outsider, client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        invitation = invite_member(organization=organization, email="new@example.test", role="member", invited_by=owner)
    token = invitations.make_token(invitation)
    client.force_login(outsider)

    assert client.get(f"/invitations/{token}/").status_code == 404

    lines = request_log(formatter)
    assert lines and all(token not in line and token.split(":")[-1] not in line for line in lines)
    assert "/invitations/[redacted]/" in lines[0]
    invitation.refresh_from_db()
    assert invitation.accepted_at is None


@pytest.mark.django_db
def test_ids_in_logged_paths_are_kept(request_log, client):
    client.get("/api/users/12345678901234567890/credits")
    client.get("/api/transactions/0b7c5a3e-1f2d-4c5b-9a8e-1234567890ab/")

    lines = request_log("json")
    assert "/api/users/12345678901234567890/credits" in lines[0]
    assert "/api/transactions/0b7c5a3e-1f2d-4c5b-9a8e-1234567890ab/" in lines[1]


def test_a_path_cannot_forge_an_access_log_line():
    forged = '/x\n127.0.0.1 [2026-11-22 04:00:00 +0000] "GET /admin/ HTTP/1.1" 200 1ms'

    logged = redact_path(forged)

    assert "\n" not in logged and '"' not in logged and " " not in logged
    assert logged == "/x%0A127.0.0.1%20[2026-11-22%2004:00:00%20+0000]%20%22GET%20/admin/%20HTTP/1.1%22%20200%201ms"


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/api/usage/report", "/api/usage/report"),
        ("/invitations/eyJvcmciOjF9:1uXyZ:abcdefghijklmnopqrstu/", "/invitations/[redacted]/"),
        ("/accounts/confirm-email/MTI:1uXyZ:abcdefghijklmnopqrstuvwxyz/", "/accounts/confirm-email/[redacted]/"),
        ("/accounts/password/reset/key/1-c2v5bd-0123456789abcdef0123/", "/accounts/password/reset/key/[redacted]/"),
        ("/keys/cdk_live_abcdefghij/revoke/", "/keys/cdk_live_[redacted]/revoke/"),
        ("/api/users/12345678901234567890/credits", "/api/users/12345678901234567890/credits"),
        ("/x/0123456789abcdef0123456789abcdef01234567;param", "/x/[redacted];param"),
        ("/a\\b\x7f", "/a%5Cb%7F"),
        ("/caf\xc3\xa9/", "/caf\xc3\xa9/"),
    ],
)
def test_the_access_log_path(path, logged):
    assert redact_path(path) == logged
