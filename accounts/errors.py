from core.errors import ApplicationError, Conflict, ValidationFailed


class EmailTaken(Conflict):
    code = "email_taken"
    default_message = "A user with this email address already exists."


class InvalidEmail(ValidationFailed):
    default_message = "Enter a valid email address."


class InvalidRole(ValidationFailed):
    default_message = "The role must be client_admin or member."


class LastClientAdmin(ApplicationError):
    code = "last_client_admin"
    status_code = 409
    default_message = "An organization must keep at least one client admin."
