from core.errors import ApplicationError, Conflict, ValidationFailed


class EmailTaken(Conflict):
    code = "email_taken"
    default_message = "A user with this email address already exists."


class InvalidEmail(ValidationFailed):
    default_message = "Enter a valid email address."


class InvalidOrgSlug(ValidationFailed):
    default_message = "An organization slug is 1 to 64 letters, digits, hyphens or underscores."


class InvalidRole(ValidationFailed):
    default_message = "The role must be client_admin or member."


class LastClientAdmin(ApplicationError):
    code = "last_client_admin"
    status_code = 409
    default_message = "An organization must keep at least one client admin."


class NotClientAdmin(ApplicationError):
    code = "permission_denied"
    status_code = 403
    default_message = "Only a client admin of this organization can do that."


class AlreadyMember(Conflict):
    code = "already_member"
    default_message = "This person is already a member of the organization."


class InvitationInvalid(ApplicationError):
    code = "invitation_invalid"
    status_code = 404
    default_message = "This invitation link is not valid."


class InvitationExpired(ApplicationError):
    code = "invitation_expired"
    status_code = 410
    default_message = "This invitation has expired. Ask for a new one."


class InvitationNotForYou(ApplicationError):
    code = "invitation_not_for_you"
    status_code = 404
    default_message = "This invitation was sent to another email address."


class MoveNeedsConfirmation(Conflict):
    code = "move_needs_confirmation"
    default_message = "Joining this organization moves you out of your current one: confirm to continue."


class MfaNotEnabled(ApplicationError):
    code = "mfa_not_enabled"
    status_code = 409
    default_message = "Set up two-factor authentication for yourself before requiring it for your organization."
