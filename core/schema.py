from typing import Any

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiExample
from rest_framework import serializers


class AutoSchema(SpectacularAutoSchema):
    """Names nested serializers after their view (HackSoft's `UsageReportApi.InputSerializer`
    becomes `UsageReportApiInput`), so every view's Input/Output is its own component."""

    def get_serializer_name(self, serializer, direction):
        qualname = serializer.__class__.__qualname__
        if "." in qualname and "<locals>" not in qualname:
            return qualname.replace(".", "")
        return super().get_serializer_name(serializer, direction)


def error_example(name: str, code: str, detail: str, status_code: int, **extra: Any) -> OpenApiExample:
    """An OpenAPI response example of the error envelope (core.api.error_body)."""
    return OpenApiExample(
        name,
        value={"success": False, "error": code, "detail": detail, **extra},
        response_only=True,
        status_codes=[str(status_code)],
    )


class ErrorSerializer(serializers.Serializer):
    """The error envelope of every API error (core.api.error_body), for the schema: without a body
    schema on an error response, drf-spectacular leaves out that status's examples."""

    success = serializers.BooleanField(default=False)
    error = serializers.CharField(help_text="Stable error code.")
    detail = serializers.CharField()
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="validation_error only: messages per field (body-level under non_field_errors).",
    )
    remainingCredits = serializers.IntegerField(required=False, help_text="insufficient_credits only.")
