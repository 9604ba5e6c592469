import pytest
from django.core import mail

from core.models import AuditEvent
from credits.selectors import get_wallet
from credits.services import MAX_AMOUNT, set_wallet, spend_credits
from tests.credits.conftest import fund

pytestmark = pytest.mark.django_db

URL = "/settings/organization/"


@pytest.fixture
def watched(organization):
    """Acme with a threshold of 50 already set by staff."""
    return set_wallet(organization=organization, low_credit_threshold=50)


def post_threshold(client, value: str, **kwargs):
    return client.post(URL, {"low_credit_threshold": value}, **kwargs)


def test_a_client_admin_sets_the_threshold(client, owner, organization):
    client.force_login(owner)
    before = get_wallet(organization=organization).version

    response = post_threshold(client, "1500", follow=True)

    assert response.redirect_chain == [(URL, 302)]
    wallet = get_wallet(organization=organization)
    assert wallet.low_credit_threshold == 1500
    assert wallet.version == before + 1
    html = response.content.decode()
    assert "falls below 1,500 credits" in html
    assert 'value="1500"' in html
    audit = AuditEvent.objects.get(event="credits.wallet_settings")
    assert audit.actor == owner
    assert audit.new_value["low_credit_threshold"] == 1500


def test_a_client_admin_turns_alerts_off_with_an_empty_field(client, owner, organization, watched):
    client.force_login(owner)

    response = post_threshold(client, "", follow=True)

    assert get_wallet(organization=organization).low_credit_threshold is None
    assert "Low-credit alerts are off." in response.content.decode()


@pytest.mark.parametrize("value", ["0", " 42 ", str(MAX_AMOUNT)])
def test_the_bounds_are_those_of_the_service(client, owner, organization, value):
    client.force_login(owner)
    post_threshold(client, value)
    assert get_wallet(organization=organization).low_credit_threshold == int(value)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("-5", "cannot be negative"),
        ("abc", "Enter a whole number of credits"),
        ("1.5", "Enter a whole number of credits"),
        ("10.0", "Enter a whole number of credits"),
        ("1e3", "Enter a whole number of credits"),
        ("1,000", "Enter a whole number of credits"),
        ("\uff11\uff12", "Enter a whole number of credits"),
        (str(MAX_AMOUNT + 1), "at most 1,000,000,000,000 credits"),
        ("9" * 5000, "at most 1,000,000,000,000 credits"),
    ],
)
def test_bad_input_shows_a_form_error_and_changes_nothing(client, owner, organization, watched, value, error):
    client.force_login(owner)

    response = post_threshold(client, value)

    assert response.status_code == 200
    assert error in response.content.decode()
    wallet = get_wallet(organization=organization)
    assert (wallet.low_credit_threshold, wallet.version) == (50, watched.version)


def test_a_member_sees_the_threshold_but_cannot_change_it(client, member, organization, watched):
    client.force_login(member)

    html = client.get(URL).content.decode()
    assert "50</strong> credits" in html
    assert "Save alert" not in html
    assert "Only a client admin" in html

    assert post_threshold(client, "").status_code == 403
    assert post_threshold(client, "10").status_code == 403
    wallet = get_wallet(organization=organization)
    assert (wallet.low_credit_threshold, wallet.version) == (50, watched.version)


def test_an_anonymous_visitor_is_sent_to_log_in(client, organization, watched):
    for response in (client.get(URL), post_threshold(client, "")):
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    assert get_wallet(organization=organization).low_credit_threshold == 50


def test_another_organizations_wallet_is_never_touched(client, owner, outsider):
    globex = outsider.membership.organization
    theirs = set_wallet(organization=globex, low_credit_threshold=7)
    client.force_login(owner)

    post_threshold(client, "900")
    post_threshold(client, "")

    wallet = get_wallet(organization=globex)
    assert (wallet.low_credit_threshold, wallet.version) == (7, theirs.version)


def test_the_dashboard_and_the_settings_pages_link_to_it(client, owner):
    client.force_login(owner)
    assert f'href="{URL}#low-credit-alert"' in client.get("/dashboard/").content.decode()
    assert f'href="{URL}"' in client.get("/settings/").content.decode()


def test_a_threshold_set_here_alerts_when_a_later_spend_crosses_it(
    client, owner, organization, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SITE_URL = "https://portal.creditdesk.test"
    fund(organization, 100)
    client.force_login(owner)
    with django_capture_on_commit_callbacks(execute=True):
        post_threshold(client, "50")

    with django_capture_on_commit_callbacks(execute=True):
        spend_credits(organization=organization, amount=60)

    assert [message.to for message in mail.outbox] == [["owner@acme.test"]]
    message = mail.outbox[0]
    assert "below your alert threshold of 50" in message.subject
    assert f"https://portal.creditdesk.test{URL}" in message.body
    assert f'href="https://portal.creditdesk.test{URL}"' in message.alternatives[0][0]
