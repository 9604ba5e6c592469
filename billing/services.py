"""Billing's writes: plan changes, quotes, purchases and the grants that payments trigger."""

from typing import Any

from django.db import transaction

from accounts.models import Organization
from billing.errors import UnknownPlan
from billing.models import Plan
from core.audit import record_audit
from core.outbox import record_changes
from credits import services as credit_services


@transaction.atomic
def change_plan(*, organization: Organization, plan_code: str, actor: Any = None) -> Organization:
    """Put the organization on the active plan `plan_code`.

    The plan's quotas apply at once; the wallet's version grows so Redis shows the new
    `plan` (never overwritten by an older hash), and an audit row records the change.
    Changing to the current plan changes nothing.
    """
    plan = Plan.objects.filter(code=plan_code, is_active=True).first() if isinstance(plan_code, str) else None
    if plan is None:
        raise UnknownPlan(f"There is no active plan with the code {plan_code!r}.")
    organization = Organization.objects.select_for_update().get(pk=organization.pk)
    old_code = organization.plan_id
    if old_code == plan.code:
        return organization
    organization.plan = plan
    organization.save(update_fields=["plan"])
    credit_services.bump_wallet_version(organization=organization)
    record_changes("org", [organization.pk])
    record_audit(
        event="plan_changed",
        actor=actor,
        organization=organization,
        target=f"org:{organization.pk}",
        old={"plan": old_code},
        new={"plan": plan.code},
    )
    return organization
