"""seed_demo adds demo keys and a month of usage once; running it again adds nothing."""

import json
from io import StringIO

from allauth.account.models import EmailAddress
from django.core.management import call_command

from accounts.models import Organization, User
from core.management.commands.seed_demo import DEMO_ORG, LOGINS
from credits.selectors import verify_ledger
from usage.models import UsageEvent


def _seed() -> dict:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


CUSTOMER_LOGINS = [login for login in LOGINS if login["role"] != "staff"]


def test_seed_demo_records_a_month_of_usage_once(db, settings):
    settings.DEBUG = True
    first = _seed()
    organization = Organization.objects.get(slug=DEMO_ORG)
    count = UsageEvent.objects.filter(organization=organization).count()

    second = _seed()

    assert first == second == {"logins": LOGINS}
    assert count >= 30
    assert UsageEvent.objects.filter(organization=organization).count() == count
    assert verify_ledger().ok


def test_the_demo_log_ins_have_verified_primary_addresses_once(db, settings):
    settings.DEBUG = True
    _seed()
    _seed()

    addresses = EmailAddress.objects.filter(email__in=[login["email"] for login in LOGINS])
    assert sorted(addresses.values_list("email", "verified", "primary")) == sorted(
        (login["email"], True, True) for login in LOGINS
    )


def test_with_debug_on_the_staff_log_in_is_a_superuser(db, settings):
    settings.DEBUG = True
    assert {"email": "staff@creditdesk.test", "password": "creditdesk-demo", "role": "staff"} in _seed()["logins"]
    staff = User.objects.get(email="staff@creditdesk.test")
    assert staff.is_superuser and staff.check_password("creditdesk-demo")


def test_with_debug_off_there_is_no_staff_log_in_with_the_published_password(db, settings):
    settings.DEBUG = False
    first = _seed()
    second = _seed()

    assert first == second == {"logins": CUSTOMER_LOGINS}
    assert not User.objects.filter(is_staff=True).exists()
    assert not User.objects.filter(email__iexact="staff@creditdesk.test").exists()
    organization = Organization.objects.get(slug=DEMO_ORG)
    assert UsageEvent.objects.filter(organization=organization).count() >= 30
    for login in CUSTOMER_LOGINS:
        assert User.objects.get(email=login["email"]).check_password(login["password"])
    assert verify_ledger().ok


def test_with_debug_off_a_staff_user_from_an_earlier_debug_run_is_left_alone(db, settings):
    settings.DEBUG = True
    _seed()
    staff = User.objects.get(email="staff@creditdesk.test")
    staff.set_password("changed-since-the-demo")
    staff.save()

    settings.DEBUG = False
    assert _seed() == {"logins": CUSTOMER_LOGINS}

    staff.refresh_from_db()
    assert staff.is_superuser and staff.check_password("changed-since-the-demo")
