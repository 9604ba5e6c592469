from core.errors import ApplicationError, Conflict, NotFoundError, ValidationFailed


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


class ReasonRequired(ValidationFailed):
    default_message = "A reason is required."

    def __init__(self, message: str | None = None, **extra: object) -> None:
        extra.setdefault("fields", {"reason": ["This field is required."]})
        super().__init__(message, **extra)


class ReasonTooLong(ValidationFailed):
    default_message = "The reason is too long."


class NotASpend(ValidationFailed):
    code = "not_refundable"
    default_message = "Only a spend (a debit of one wallet to a system account) can be refunded."


class RefundExceedsSpend(Conflict):
    code = "refund_exceeds_spend"
    default_message = "The refunds of a spend cannot add up to more than the spend."


class SameWallet(ValidationFailed):
    default_message = "Credits cannot be transferred to the same organization."


class OverdraftBelowDebt(Conflict):
    code = "overdraft_below_debt"
    default_message = "The overdraft limit cannot be lowered below the wallet's current debt."


class WalletNotFound(NotFoundError):
    code = "wallet_not_found"
    default_message = "This organization has no wallet."
