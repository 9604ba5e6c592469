"""Domain errors. Services raise them; the DRF exception handler and the portal map them once."""


class ApplicationError(Exception):
    """A rule of the business was broken. `code` is stable and part of the API contract."""

    code = "application_error"
    status_code = 400
    default_message = "The request could not be completed."

    def __init__(self, message: str | None = None, **extra: object) -> None:
        self.message = message or self.default_message
        self.extra = extra
        super().__init__(self.message)


class NotFoundError(ApplicationError):
    code = "not_found"
    status_code = 404
    default_message = "Not found."


class ValidationFailed(ApplicationError):
    code = "validation_error"
    status_code = 400
    default_message = "Invalid input."


class Conflict(ApplicationError):
    code = "conflict"
    status_code = 409
    default_message = "The request conflicts with the current state."


class Forbidden(ApplicationError):
    code = "permission_denied"
    status_code = 403
    default_message = "You do not have permission to perform this action."
