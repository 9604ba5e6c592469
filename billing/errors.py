"""Billing's domain errors: stable codes, mapped to HTTP once by the API's exception handler."""

from core.errors import ApplicationError, Conflict, Forbidden, NotFoundError, ValidationFailed


class UnknownPlan(ValidationFailed):
    code = "unknown_plan"
    default_message = "There is no active plan with this code."


class AlreadyOnPlan(Conflict):
    code = "already_on_plan"
    default_message = "Your organization is already on this plan."


class UnknownPackage(NotFoundError):
    code = "unknown_package"
    default_message = "There is no active credit package with this id."


class InvalidCreditAmount(ValidationFailed):
    code = "invalid_credit_amount"
    default_message = "The number of credits is outside what can be bought."


class PromotionInvalid(ValidationFailed):
    code = "promo_invalid"
    default_message = "This promotion code does not exist."


class PromotionNotActive(ValidationFailed):
    code = "promo_not_active"
    default_message = "This promotion code is not valid at this time."


class PromotionExhausted(Conflict):
    code = "promo_exhausted"
    default_message = "This promotion code has reached its maximum number of redemptions."


class PromotionAlreadyRedeemed(Conflict):
    code = "promo_already_redeemed"
    default_message = "Your organization has already used this promotion code."


class QuoteNotFound(NotFoundError):
    code = "quote_not_found"
    default_message = "There is no such quote."


class QuoteExpired(ApplicationError):
    code = "quote_expired"
    status_code = 410
    default_message = "This quote has expired: ask for a new one."


class QuoteUsed(Conflict):
    code = "quote_used"
    default_message = "This quote was already used for a purchase: ask for a new one."


class ProviderUnavailable(ValidationFailed):
    code = "provider_unavailable"
    default_message = "This payment provider is not configured."


class SandboxDisabled(Forbidden):
    code = "sandbox_disabled"
    default_message = "The sandbox provider only works in a development setup (DEBUG on, no payment keys)."


class AmountTooSmall(ValidationFailed):
    code = "amount_too_small"
    default_message = "Card and PayPal payments need a total of at least $0.50."


class PaymentProviderError(ApplicationError):
    code = "payment_provider_error"
    status_code = 502
    default_message = (
        "The payment provider could not be reached; nothing was charged. Ask for a new quote and try again."
    )


class MalformedProviderEvent(ValidationFailed):
    """A verified provider event whose content is not what the provider documents: nothing is changed."""

    code = "malformed_provider_event"
    default_message = "The payment provider's event is not in the documented shape."


class PaymentNotRecorded(ApplicationError):
    """A provider event refers to a payment we have not recorded yet (events can arrive out of order)."""

    code = "payment_not_recorded"
    status_code = 409
    default_message = "This payment is not recorded yet."


class NoSubscription(Conflict):
    code = "no_subscription"
    default_message = "Your organization has no paid subscription."


class PurchaseNotFound(NotFoundError):
    code = "purchase_not_found"
    default_message = "There is no such purchase."


class DisputeAlreadyOpen(Conflict):
    code = "dispute_already_open"
    default_message = "This purchase already has an open dispute."


class DisputeReasonTooLong(ValidationFailed):
    default_message = "The reason for a dispute is too long."


class DisputeNotOpen(Conflict):
    code = "dispute_not_open"
    default_message = "This dispute is already resolved."


class DisputeRefundTooLarge(Conflict):
    """The ledger's rule for refunds, applied to a disputed purchase: never more than the original in total."""

    code = "dispute_refund_too_large"
    default_message = (
        "A dispute cannot give back more credits than the disputed purchase has left "
        "(its credits less what was already refunded or given back)."
    )
