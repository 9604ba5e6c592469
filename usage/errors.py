"""The usage API's domain errors; their codes are part of the public contract (section 1)."""

from core.errors import Forbidden, NotFoundError


class UnknownUser(NotFoundError):
    code = "unknown_user"
    default_message = "No such user, or the user belongs to no organization."


class UnknownApiKey(NotFoundError):
    code = "unknown_api_key"
    default_message = "No such API key in the user's organization."


class ApiKeyRevoked(Forbidden):
    code = "api_key_revoked"
    default_message = "The API key was revoked."


class ApiKeyExpired(Forbidden):
    code = "api_key_expired"
    default_message = "The API key has expired."


class QueryTypeNotAllowed(Forbidden):
    code = "query_type_not_allowed"
    default_message = "The organization's plan does not allow this query type."
