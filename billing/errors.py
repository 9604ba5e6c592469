"""Billing's domain errors: stable codes, mapped to HTTP once by the API's exception handler."""

from core.errors import ValidationFailed


class UnknownPlan(ValidationFailed):
    code = "unknown_plan"
    default_message = "There is no active plan with this code."
