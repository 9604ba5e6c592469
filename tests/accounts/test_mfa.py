import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value, yield_hotp_counters_from_time

from accounts.services import set_mfa_requirement
from tests.accounts.helpers import log_in, reauthenticate

pytestmark = pytest.mark.django_db


def current_code(secret: str) -> str:
    counters = list(yield_hotp_counters_from_time())
    return format_hotp_value(hotp_value(secret, counters[len(counters) // 2]))


def enrol_totp(client, email: str) -> str:
    """Log in, activate TOTP with a code from allauth's helpers; returns the secret."""
    log_in(client, email)
    reauthenticate(client)
    client.get("/accounts/2fa/totp/activate/")
    secret = client.session["mfa.totp.secret"]
    response = client.post("/accounts/2fa/totp/activate/", {"code": current_code(secret)})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == "/accounts/2fa/recovery-codes/"
    return secret


def recovery_codes(user) -> list[str]:
    return Authenticator.objects.get(user=user, type=Authenticator.Type.RECOVERY_CODES).wrap().get_unused_codes()


@pytest.fixture(autouse=True)
def _tolerant_totp(settings):
    # One period of tolerance, so a code made at a period's end still counts.
    settings.MFA_TOTP_TOLERANCE = 1


def test_totp_enrolment_then_log_in_with_a_code(client, owner):
    secret = enrol_totp(client, "owner@acme.test")
    assert Authenticator.objects.filter(user=owner, type=Authenticator.Type.TOTP).exists()
    client.post("/accounts/logout/")

    response = log_in(client, "owner@acme.test")
    assert response["Location"] == "/accounts/2fa/authenticate/"
    assert client.get("/dashboard/").status_code == 302  # not logged in yet

    response = client.post("/accounts/2fa/authenticate/", {"code": current_code(secret)})
    assert response["Location"] == "/dashboard/"
    assert client.get("/dashboard/").status_code == 200


def test_a_totp_code_cannot_be_replayed(client, owner):
    secret = enrol_totp(client, "owner@acme.test")
    client.post("/accounts/logout/")
    code = current_code(secret)
    log_in(client, "owner@acme.test")
    assert client.post("/accounts/2fa/authenticate/", {"code": code})["Location"] == "/dashboard/"
    client.post("/accounts/logout/")

    log_in(client, "owner@acme.test")
    response = client.post("/accounts/2fa/authenticate/", {"code": code})

    assert response.status_code == 200
    assert "Incorrect code" in response.content.decode()


def test_log_in_with_a_recovery_code_which_then_is_spent(client, owner):
    enrol_totp(client, "owner@acme.test")
    code = recovery_codes(owner)[0]
    client.post("/accounts/logout/")

    log_in(client, "owner@acme.test")
    assert client.post("/accounts/2fa/authenticate/", {"code": code})["Location"] == "/dashboard/"
    assert code not in recovery_codes(owner)
    client.post("/accounts/logout/")

    log_in(client, "owner@acme.test")
    assert client.post("/accounts/2fa/authenticate/", {"code": code}).status_code == 200


def test_recovery_codes_are_shown_only_once(client, owner):
    enrol_totp(client, "owner@acme.test")
    codes = recovery_codes(owner)
    first = client.get("/accounts/2fa/recovery-codes/").content.decode()
    assert all(code in first for code in codes)
    second = client.get("/accounts/2fa/recovery-codes/").content.decode()
    assert not any(code in second for code in codes)


def test_members_of_an_organization_requiring_mfa_are_sent_to_enrol(client, organization, member):
    set_mfa_requirement(organization=organization, required=True, actor=None)
    log_in(client, "member@acme.test")

    response = client.get("/dashboard/")
    assert response.status_code == 302 and response["Location"] == "/accounts/2fa/"
    assert client.get("/accounts/2fa/").status_code == 200
    api = client.post("/api/keys/verify", {"key": "x"}, content_type="application/json")
    assert api.status_code == 403 and api.json()["error"] == "mfa_required"


def test_a_member_with_mfa_passes_the_organization_requirement(client, organization, member):
    enrol_totp(client, "member@acme.test")
    set_mfa_requirement(organization=organization, required=True, actor=None)
    assert client.get("/dashboard/").status_code == 200


def test_a_client_admin_must_have_mfa_before_requiring_it(client, owner, organization):
    log_in(client, "owner@acme.test")
    response = client.post("/team/mfa/", {"require_mfa": "on"}, follow=True)
    assert "Set up two-factor authentication for yourself" in response.content.decode()
    organization.refresh_from_db()
    assert not organization.require_mfa

    client.post("/accounts/logout/")
    enrol_totp(client, "owner@acme.test")
    client.post("/team/mfa/", {"require_mfa": "on"})
    organization.refresh_from_db()
    assert organization.require_mfa


def test_members_cannot_change_the_mfa_requirement(client, organization, member):
    log_in(client, "member@acme.test")
    client.post("/team/mfa/", {"require_mfa": "on"})
    organization.refresh_from_db()
    assert not organization.require_mfa


def test_admin_log_in_goes_through_allauth(client):
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_staff_need_mfa_for_the_admin_when_required(client, settings, staff):
    settings.ADMIN_REQUIRE_MFA = True
    log_in(client, "staff@creditdesk.test", "staff-pass-123")
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"] == "/accounts/2fa/"

    Authenticator.objects.create(user=staff, type=Authenticator.Type.TOTP, data={"secret": "x"})
    assert client.get("/admin/").status_code == 200


def test_the_log_in_page_offers_passkeys(client):
    html = client.get("/accounts/login/").content.decode()
    assert 'id="passkey_login"' in html


def test_password_is_still_required_before_the_code(client, owner):
    enrol_totp(client, "owner@acme.test")
    client.post("/accounts/logout/")
    response = log_in(client, "owner@acme.test", "wrong-password-0")
    assert response.status_code == 200
    assert client.get("/accounts/2fa/authenticate/").status_code == 302
