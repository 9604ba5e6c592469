"""seed_demo adds demo keys and a month of usage once; running it again adds nothing."""

import json
from io import StringIO

from allauth.account.models import EmailAddress
from django.core.management import call_command

from accounts.models import Organization
from core.management.commands.seed_demo import DEMO_ORG, LOGINS
from credits.selectors import verify_ledger
from usage.models import UsageEvent


def _seed() -> dict:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_seed_demo_records_a_month_of_usage_once(db):
    first = _seed()
    organization = Organization.objects.get(slug=DEMO_ORG)
    count = UsageEvent.objects.filter(organization=organization).count()

    second = _seed()

    assert first == second == {"logins": LOGINS}
    assert count >= 30
    assert UsageEvent.objects.filter(organization=organization).count() == count
    assert verify_ledger().ok


def test_the_demo_log_ins_have_verified_primary_addresses_once(db):
    _seed()
    _seed()

    addresses = EmailAddress.objects.filter(email__in=[login["email"] for login in LOGINS])
    assert sorted(addresses.values_list("email", "verified", "primary")) == sorted(
        (login["email"], True, True) for login in LOGINS
    )
