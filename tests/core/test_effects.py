"""Side effects after commit (core.effects) when the Celery broker cannot be reached.

Found from outside: with the broker down, a low-credit alert and an invitation were logged as
"could not queue" and never sent; nothing looks for them later.
"""

import pytest
from anymail.exceptions import AnymailRequestsAPIError
from django.core import mail
from kombu.exceptions import OperationalError

from accounts.services import invite_member
from credits.tasks import send_low_credit_alert

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker_down(monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6399. Connection refused.")

    monkeypatch.setattr("celery.app.task.Task.delay", refuse)


def test_with_the_broker_down_an_invitation_is_still_sent(
    broker_down, owner, organization, django_capture_on_commit_callbacks, caplog
):
    with django_capture_on_commit_callbacks(execute=True):
        invite_member(organization=organization, email="colleague@example.test", role="member", invited_by=owner)

    assert mail.outbox[-1].to == ["colleague@example.test"]
    assert "running it in this process" in caplog.text


def test_the_low_credit_alert_is_retried_when_the_email_api_fails(monkeypatch):
    """Found from outside: anymail's API errors are OSErrors but not ConnectionErrors, so the
    alert task gave up at once on the production email backends."""
    calls = []

    def send_once_the_api_answers(*, organization_id, version):
        calls.append(organization_id)
        if len(calls) == 1:
            raise AnymailRequestsAPIError("Postmark API response 503")
        return 1

    monkeypatch.setattr("credits.notifications.send_low_credit_alert", send_once_the_api_answers)

    send_low_credit_alert.apply(kwargs={"organization_id": 7, "version": 3}, throw=False)

    assert calls == [7, 7]  # retried (eagerly here), and the second attempt sent it


def test_with_the_broker_down_a_failing_task_is_tried_once_in_the_process(
    broker_down, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    """Found in review: the in-process fallback ran Celery's retries back to back inside the
    request (eager mode ignores the backoff)."""
    from core.effects import delay_on_commit

    calls = []

    def email_api_down(*, organization_id, version):
        calls.append(organization_id)
        raise AnymailRequestsAPIError("Postmark API response 503")

    monkeypatch.setattr("credits.notifications.send_low_credit_alert", email_api_down)

    with django_capture_on_commit_callbacks(execute=True):
        delay_on_commit(send_low_credit_alert, organization_id=7, version=3)

    assert calls == [7]
    assert "failed in this process too" in caplog.text
