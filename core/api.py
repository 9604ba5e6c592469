"""The API error envelope, set up once for every DRF view and every error under /api/.

Every error body is `{"success": false, "error": "<code>", "detail": "<text>", ...}`.
"""

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import set_rollback

from core.errors import ApplicationError

MAX_BIGINT = 2**63 - 1

DRF_ERROR_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "validation_error",
    exceptions.ValidationError: "validation_error",
}


def error_body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"success": False, "error": code, "detail": detail, **extra}


def error_response(code: str, detail: str, status: int, **extra: Any) -> JsonResponse:
    """An envelope outside DRF (middleware, Django views under /api/)."""
    return JsonResponse(error_body(code, detail, **extra), status=status)


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {str(key): _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def validation_fields(detail: Any) -> dict[str, Any]:
    """DRF validation detail as `{field: [messages]}`; body-level messages go under non_field_errors."""
    detail = _flatten(detail)
    if isinstance(detail, dict):
        return {key: value if isinstance(value, list | dict) else [value] for key, value in detail.items()}
    if isinstance(detail, list):
        return {"non_field_errors": detail}
    return {"non_field_errors": [detail]}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        set_rollback()
        return Response(error_body(exc.code, exc.message, **exc.extra), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None

    set_rollback()
    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))

    code = next((c for cls, c in DRF_ERROR_CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError | exceptions.ParseError):
        fields = validation_fields(exc.detail)
        body = error_body(code, "Invalid input.", fields=fields)
        if isinstance(exc, exceptions.ParseError):
            body["detail"] = str(exc.detail)
    elif isinstance(exc, exceptions.UnsupportedMediaType):
        # The contract puts a 415's message under fields.non_field_errors too.
        body = error_body(code, str(exc.detail), fields={"non_field_errors": [str(exc.detail)]})
    else:
        body = error_body(code, str(exc.detail))
    return Response(body, status=exc.status_code, headers=headers)


def parse_positive_id(value: Any, *, field: str) -> int:
    """An id from a path or query string: an integer from 1 to 2^63-1, else a 400."""
    text = str(value)
    if not text.isascii() or not text.isdigit() or len(text.lstrip("0")) > 19:
        raise exceptions.ValidationError({field: ["Must be an integer from 1 to 2^63-1."]})
    number = int(text)
    if not 1 <= number <= MAX_BIGINT:
        raise exceptions.ValidationError({field: ["Must be an integer from 1 to 2^63-1."]})
    return number


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer only: DRF's IntegerField would take "5", 5.0 and true."""

    default_error_messages = {"invalid": "Must be a JSON integer."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return data


class StrictCharField(serializers.CharField):
    """A JSON string only: DRF's CharField would take 5 or true as "5" and "True"."""

    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def read_json_object(request: Request) -> Any:
    """The parsed body; a body without a JSON content type is a 415 with `fields.non_field_errors`."""
    media_type = (request.content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        message = "Send the body as JSON with the header Content-Type: application/json."
        if not media_type:
            message = "The request has no Content-Type; send JSON with Content-Type: application/json."
        raise exceptions.UnsupportedMediaType(media_type, detail=message)
    if not request.stream:
        raise exceptions.ParseError("JSON parse error - the body is empty.")
    return request.data
