"""Reads shared by billing's pages, API and commands."""

from accounts.models import Organization
from billing.models import Plan


def get_plan_for_organization(*, organization: Organization) -> Plan:
    """The organization's current plan (every organization has one, `free` by default)."""
    return Plan.objects.get(code=organization.plan_id)


def get_active_plan(*, code: str) -> Plan | None:
    return Plan.objects.filter(code=code, is_active=True).first()


def list_active_plans() -> list[Plan]:
    return list(Plan.objects.filter(is_active=True))
