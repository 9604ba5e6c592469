"""seed_demo adds demo keys and a month of usage once; running it again adds nothing."""

import json
from io import StringIO

from django.core.management import call_command

from credits.selectors import verify_ledger
from usage.models import UsageEvent


def _seed() -> dict:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_seed_demo_records_a_month_of_usage_once(db):
    first = _seed()
    count = UsageEvent.objects.filter(organization_id=first["orgId"]).count()

    _seed()

    assert count >= 30
    assert UsageEvent.objects.filter(organization_id=first["orgId"]).count() == count
    assert verify_ledger().ok
