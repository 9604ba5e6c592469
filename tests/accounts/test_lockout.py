import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group
from django.core import mail

from accounts.models import LoginLockout
from accounts.permissions import BUSINESS_ADMINS, grant_business_admin_permissions
from tests.accounts.helpers import PASSWORD, log_in

pytestmark = pytest.mark.django_db

ALLOWED_FAILURES = 5  # settings.LOGIN_FAILED_LIMIT_PER_ACCOUNT = "5/15m"


def fail_log_ins(client, email: str, times: int) -> None:
    for _ in range(times):
        response = log_in(client, email, "wrong-password-0")
        assert response.status_code == 200


def test_the_configured_limit_matches_the_settings(settings):
    assert settings.ACCOUNT_RATE_LIMITS["login_failed"] == "30/10m/ip,5/15m/key"


def test_an_account_is_locked_after_the_configured_failures_even_with_the_right_password(client, owner):
    fail_log_ins(client, "owner@acme.test", ALLOWED_FAILURES)
    assert not LoginLockout.objects.exists()

    response = log_in(client, "owner@acme.test", PASSWORD)

    assert response.status_code == 200
    assert "Too many failed log-in attempts" in response.content.decode()
    assert client.get("/dashboard/").status_code == 302
    lockout = LoginLockout.objects.get()
    assert (lockout.email, lockout.scope, lockout.user, lockout.ip_address) == (
        "owner@acme.test",
        "account",
        owner,
        "127.0.0.1",
    )
    assert lockout.is_active


def test_the_owner_is_emailed_once_per_lock_out(client, owner, django_capture_on_commit_callbacks):
    fail_log_ins(client, "owner@acme.test", ALLOWED_FAILURES)
    with django_capture_on_commit_callbacks(execute=True):
        log_in(client, "owner@acme.test", PASSWORD)
        log_in(client, "owner@acme.test", PASSWORD)

    lockout_mails = [m for m in mail.outbox if "locked" in m.subject]
    assert len(lockout_mails) == 1
    assert lockout_mails[0].to == ["owner@acme.test"]
    assert "/accounts/password/reset/" in lockout_mails[0].body
    assert LoginLockout.objects.count() == 1


def test_a_lock_out_on_an_unknown_email_is_recorded_without_an_email(client, db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        fail_log_ins(client, "nobody@example.test", ALLOWED_FAILURES + 1)
    assert LoginLockout.objects.get().user is None
    assert not [m for m in mail.outbox if "locked" in m.subject]


def test_other_accounts_can_still_log_in_from_the_same_ip(client, owner, member):
    fail_log_ins(client, "owner@acme.test", ALLOWED_FAILURES + 1)
    assert log_in(client, "member@acme.test", PASSWORD)["Location"] == "/dashboard/"


def test_too_many_failures_from_one_ip_lock_that_ip(client, settings, owner):
    settings.ACCOUNT_RATE_LIMITS = {"login_failed": "3/10m/ip,50/15m/key"}
    for n in range(3):
        log_in(client, f"someone{n}@example.test", "wrong-password-0")

    response = log_in(client, "owner@acme.test", PASSWORD)

    assert "Too many failed log-in attempts" in response.content.decode()
    lockout = LoginLockout.objects.get()
    assert (lockout.scope, lockout.ip_address) == ("ip", "127.0.0.1")


def test_a_password_reset_lifts_the_lock_out(client, owner):
    fail_log_ins(client, "owner@acme.test", ALLOWED_FAILURES + 1)
    owner.set_password("brand-new-long-pass-5")
    owner.save()
    # allauth clears the account's counters when the reset completes:
    from allauth.account.adapter import get_adapter
    from django.test import RequestFactory

    request = RequestFactory().post("/accounts/password/reset/key/done/")
    get_adapter(request)._delete_login_attempts_cached_email(request, email="owner@acme.test")

    assert log_in(client, "owner@acme.test", "brand-new-long-pass-5")["Location"] == "/dashboard/"


def test_staff_see_lock_outs_in_the_admin_and_clearing_one_lets_the_owner_log_in(
    client, owner, staff, django_capture_on_commit_callbacks
):
    fail_log_ins(client, "owner@acme.test", ALLOWED_FAILURES + 1)
    lockout = LoginLockout.objects.get()

    grant_business_admin_permissions(apps=django_apps)
    staff.groups.add(Group.objects.get(name=BUSINESS_ADMINS))
    admin_client = client.__class__()
    admin_client.force_login(staff)
    page = admin_client.get("/admin/accounts/loginlockout/?state=active")
    assert page.status_code == 200
    assert "owner@acme.test" in page.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/accounts/loginlockout/", {"action": "clear_selected", "_selected_action": [lockout.pk]}
        )
    assert response.status_code == 302
    lockout.refresh_from_db()
    assert lockout.cleared_by == staff and not lockout.is_active
    assert log_in(client, "owner@acme.test", PASSWORD)["Location"] == "/dashboard/"


def test_customers_cannot_open_the_admin(client, owner):
    client.force_login(owner)
    response = client.get("/admin/accounts/loginlockout/")
    assert response.status_code in (302, 403)
    assert "owner@acme.test" not in response.content.decode()


def test_x_forwarded_for_is_ignored_without_trusted_proxies(client, settings, db):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 0
    for _ in range(ALLOWED_FAILURES + 1):
        client.post("/accounts/login/", {"login": "x@example.test", "password": "bad"}, HTTP_X_FORWARDED_FOR="6.6.6.6")
    assert LoginLockout.objects.get().ip_address == "127.0.0.1"


def test_the_client_ip_comes_from_the_trusted_proxy_hop(client, settings, db):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    for _ in range(ALLOWED_FAILURES + 1):
        client.post(
            "/accounts/login/",
            {"login": "x@example.test", "password": "bad"},
            HTTP_X_FORWARDED_FOR="1.1.1.1, 6.6.6.6",  # spoofed by the client, then appended by our proxy
            REMOTE_ADDR="10.0.0.2",
        )
    assert LoginLockout.objects.get().ip_address == "6.6.6.6"


def test_clearing_an_ip_lock_out_lets_that_ip_log_in_again(
    client, settings, owner, staff, django_capture_on_commit_callbacks
):
    from accounts.services import clear_lockout

    settings.ACCOUNT_RATE_LIMITS = {"login_failed": "3/10m/ip,50/15m/key"}
    for n in range(3):
        log_in(client, f"someone{n}@example.test", "wrong-password-0")
    assert "Too many failed" in log_in(client, "owner@acme.test", PASSWORD).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        clear_lockout(lockout=LoginLockout.objects.get(scope="ip"), actor=staff)

    assert log_in(client, "owner@acme.test", PASSWORD)["Location"] == "/dashboard/"
