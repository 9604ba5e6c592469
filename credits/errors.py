from core.errors import ApplicationError, Conflict, ValidationFailed


class InsufficientCredits(ApplicationError):
    code = "insufficient_credits"
    status_code = 402
    default_message = "Not enough credits."


class CreditsPaused(ApplicationError):
    code = "credits_paused"
    status_code = 403
    default_message = "The organization's credits are paused."


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"
    default_message = "This idempotency key was already used with other parameters."


class InvalidPosting(ValidationFailed):
    default_message = "The postings of a transaction must be non-zero integers that sum to zero."
