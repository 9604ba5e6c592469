import pytest
from django.core import mail

from credits import services
from credits.models import LowCreditAlert
from credits.notifications import send_low_credit_alert
from credits.selectors import get_wallet
from tests.credits.conftest import fund

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def watched(make_org, admin_of):
    """An organization with 100 credits, a threshold of 50, two client admins and a member."""
    from tests.factories import CustomerFactory

    organization = make_org(credits=100, name="Acme Analytics")
    admin_of(organization, "boss@acme.test")
    admin_of(organization, "cfo@acme.test")
    CustomerFactory(email="dev@acme.test", org_slug=organization.slug, role="member")
    services.set_wallet(organization=organization, low_credit_threshold=50)
    return organization


def spend(organization, amount, callbacks):
    with callbacks(execute=True):
        services.spend_credits(organization=organization, amount=amount)


def test_falling_below_the_threshold_emails_every_client_admin_once(watched, django_capture_on_commit_callbacks):
    spend(watched, 30, django_capture_on_commit_callbacks)
    assert mail.outbox == []
    spend(watched, 25, django_capture_on_commit_callbacks)
    assert sorted(message.to[0] for message in mail.outbox) == ["boss@acme.test", "cfo@acme.test"]
    message = mail.outbox[0]
    assert message.subject == "Acme Analytics: 45 credits left, below your alert threshold of 50"
    assert "Balance:    45 credits" in message.body
    html = message.alternatives[0][0]
    assert "<strong>45</strong> credits" in html
    assert get_wallet(organization=watched).low_credit_alerted


def test_no_second_alert_until_the_balance_went_back_above(watched, django_capture_on_commit_callbacks):
    spend(watched, 60, django_capture_on_commit_callbacks)
    spend(watched, 10, django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 2  # one crossing, two admins
    with django_capture_on_commit_callbacks(execute=True):
        fund(watched, 10)  # 40: still below
    spend(watched, 5, django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 2
    with django_capture_on_commit_callbacks(execute=True):
        fund(watched, 100)  # 135: back above
    assert not get_wallet(organization=watched).low_credit_alerted
    spend(watched, 100, django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 4
    assert LowCreditAlert.objects.count() == 2


def test_landing_exactly_on_the_threshold_is_not_a_crossing(watched, django_capture_on_commit_callbacks):
    spend(watched, 50, django_capture_on_commit_callbacks)
    assert mail.outbox == []
    spend(watched, 1, django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 2


def test_a_task_delivered_twice_sends_once(watched, django_capture_on_commit_callbacks):
    spend(watched, 60, django_capture_on_commit_callbacks)
    wallet = get_wallet(organization=watched)
    assert send_low_credit_alert(organization_id=watched.pk, version=wallet.version) == 0
    assert len(mail.outbox) == 2


def test_no_alert_when_the_balance_is_back_above_before_the_task_runs(watched, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.spend_credits(organization=watched, amount=60)
    fund(watched, 100)
    for callback in callbacks:
        callback()
    assert mail.outbox == []


def test_no_alert_without_a_threshold(make_org, admin_of, django_capture_on_commit_callbacks):
    organization = make_org(credits=100)
    admin_of(organization, "boss@globex.test")
    spend(organization, 99, django_capture_on_commit_callbacks)
    assert mail.outbox == []


def test_a_threshold_set_below_the_balance_arms_the_alert_again(watched, django_capture_on_commit_callbacks):
    spend(watched, 60, django_capture_on_commit_callbacks)  # 40 < 50: alerted
    assert len(mail.outbox) == 2
    services.set_wallet(organization=watched, low_credit_threshold=30)  # 40 >= 30: armed
    spend(watched, 15, django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 4


def test_a_failed_send_releases_the_claim_so_a_retry_sends(watched, django_capture_on_commit_callbacks, monkeypatch):
    from credits import notifications

    def broken(*args, **kwargs):
        raise ConnectionError("smtp down")

    with django_capture_on_commit_callbacks(execute=False):
        services.spend_credits(organization=watched, amount=60)
    version = get_wallet(organization=watched).version
    monkeypatch.setattr(notifications, "send_templated_email", broken)
    with pytest.raises(ConnectionError):
        send_low_credit_alert(organization_id=watched.pk, version=version)
    assert not LowCreditAlert.objects.exists()
    monkeypatch.undo()
    assert send_low_credit_alert(organization_id=watched.pk, version=version) == 2
