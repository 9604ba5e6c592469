from core.errors import ApplicationError, NotFoundError, ValidationFailed


class InvalidKeyName(ValidationFailed):
    default_message = "A key needs a name of 1 to 100 characters."


class InvalidScopes(ValidationFailed):
    default_message = "Scopes are 1 to 64 characters of a-z, 0-9, ':', '_' and '-'."


class ExpiryInPast(ValidationFailed):
    default_message = "The expiry must be in the future."


class ApiKeyLimitReached(ApplicationError):
    code = "api_key_limit_reached"
    status_code = 409
    default_message = "The organization's plan allows no more active API keys."


class NotAMember(ValidationFailed):
    default_message = "The key's creator must belong to the organization."


class ApiKeyNotFound(NotFoundError):
    code = "unknown_api_key"
    default_message = "No such API key."


class ServiceNameTaken(ApplicationError):
    code = "service_name_taken"
    status_code = 409
    default_message = "A service account with this name already exists."


class InvalidServiceName(ValidationFailed):
    default_message = "A service name is 1 to 64 characters of a-z, 0-9, '.', '_' and '-'."


class NotAServiceAccount(ValidationFailed):
    default_message = "Only service accounts have service tokens."
