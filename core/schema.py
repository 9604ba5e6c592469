from typing import Any

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiExample


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
