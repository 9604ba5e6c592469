import json

import pytest
from django.core.management import CommandError, call_command

from billing.errors import UnknownPlan
from billing.selectors import get_plan_for_organization
from billing.services import change_plan
from core.models import AuditEvent
from credits.models import Account


def run_set_plan(*args: str) -> dict:
    from io import StringIO

    out = StringIO()
    call_command("set_plan", *args, stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_set_plan_puts_the_organization_on_the_plan_and_prints_json(owner, organization):
    result = run_set_plan("OWNER@acme.test", "professional")

    assert result == {"orgId": organization.pk, "plan": "professional"}
    organization.refresh_from_db()
    assert get_plan_for_organization(organization=organization).code == "professional"


def test_set_plan_with_an_unknown_plan_fails_and_changes_nothing(owner, organization):
    with pytest.raises(CommandError, match="no active plan"):
        run_set_plan("owner@acme.test", "platinum")

    organization.refresh_from_db()
    assert organization.plan_id == "free"


def test_set_plan_for_an_unknown_email_fails(db):
    with pytest.raises(CommandError, match="No customer"):
        run_set_plan("nobody@example.test", "starter")


def test_change_plan_bumps_the_wallet_version_publishes_the_plan_and_audits(
    owner, organization, redis_client, django_capture_on_commit_callbacks
):
    version_before = Account.objects.get(organization=organization).version

    with django_capture_on_commit_callbacks(execute=True):
        change_plan(organization=organization, plan_code="starter", actor=owner)

    assert Account.objects.get(organization=organization).version > version_before
    audit = AuditEvent.objects.get(event="plan_changed", organization=organization)
    assert (audit.old_value, audit.new_value, audit.actor) == ({"plan": "free"}, {"plan": "starter"}, owner)
    assert redis_client.hget(f"creditdesk:org:{organization.pk}", "plan") == "starter"


def test_change_plan_refuses_an_inactive_plan(organization):
    from billing.models import Plan

    Plan.objects.filter(code="enterprise").update(is_active=False)

    with pytest.raises(UnknownPlan):
        change_plan(organization=organization, plan_code="enterprise")
    organization.refresh_from_db()
    assert organization.plan_id == "free"
