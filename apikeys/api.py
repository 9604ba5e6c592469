from django.core.validators import ProhibitNullCharactersValidator
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys.authentication import SERVICE_AUTHENTICATION_CLASSES
from apikeys.permissions import IsServiceAccount
from apikeys.selectors import verify_api_key
from core.api import StrictCharField, read_json_object
from core.schema import ErrorSerializer, error_example

EXAMPLE_KEY = "cdk_live_EXAMPLE-not-a-real-key-0123456789abcdefgh"


class KeyField(StrictCharField):
    """Any non-empty string: one that is not a key, NUL characters included, is `not_found`, not a 400."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators = [v for v in self.validators if not isinstance(v, ProhibitNullCharactersValidator)]


class ApiKeyVerifyApi(APIView):
    """POST /api/keys/verify: is this full API key valid, and for whom (service tokens only)."""

    authentication_classes = SERVICE_AUTHENTICATION_CLASSES
    permission_classes = [IsServiceAccount]
    service_permission = "apikeys.verify_api_key"

    class InputSerializer(serializers.Serializer):
        key = KeyField(allow_blank=False, trim_whitespace=False, help_text="The full API key, cdk_live_...")

    class OutputSerializer(serializers.Serializer):
        valid = serializers.BooleanField()
        reason = serializers.ChoiceField(
            choices=["not_found", "revoked", "expired", "credits_paused"],
            required=False,
            help_text="Only when not valid: the first of not_found, revoked, expired, credits_paused.",
        )
        apiKeyId = serializers.IntegerField(required=False)
        userId = serializers.IntegerField(required=False, help_text="The key's creator.")
        orgId = serializers.IntegerField(required=False)
        scopes = serializers.ListField(child=serializers.CharField(), required=False)
        remainingCredits = serializers.IntegerField(required=False, help_text="The wallet's balance.")
        status = serializers.ChoiceField(choices=["active", "paused"], required=False, help_text="The wallet's.")

    @extend_schema(
        operation_id="keys_verify",
        summary="Verify an API key",
        description=(
            "Answers from PostgreSQL. A key that is not valid gets only a reason: the first of "
            "not_found, revoked, expired, credits_paused. Authenticate with `Authorization: Token <service token>`."
        ),
        request=InputSerializer,
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(
                ErrorSerializer, description="`key` missing, empty or not a string: validation_error."
            ),
            401: OpenApiResponse(ErrorSerializer, description="No or bad credentials: not_authenticated."),
            403: OpenApiResponse(
                ErrorSerializer, description="Not a service token (a session, an API key): permission_denied."
            ),
        },
        examples=[
            OpenApiExample("Request", value={"key": EXAMPLE_KEY}, request_only=True),
            OpenApiExample(
                "Valid key",
                value={
                    "valid": True,
                    "apiKeyId": 456,
                    "userId": 123,
                    "orgId": 7,
                    "scopes": ["query"],
                    "remainingCredits": 95,
                    "status": "active",
                },
                response_only=True,
                status_codes=["200"],
            ),
            *(
                OpenApiExample(
                    f"Invalid: {reason}",
                    value={"valid": False, "reason": reason},
                    response_only=True,
                    status_codes=["200"],
                )
                for reason in ("not_found", "revoked", "expired", "credits_paused")
            ),
            error_example(
                "Missing key", "validation_error", "Invalid input.", 400, fields={"key": ["This field is required."]}
            ),
            error_example("No credentials", "not_authenticated", "Authentication credentials were not provided.", 401),
            error_example(
                "Not a service token", "permission_denied", "Only service accounts may call this endpoint.", 403
            ),
        ],
        tags=["service"],
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=read_json_object(request))
        serializer.is_valid(raise_exception=True)
        result = verify_api_key(serializer.validated_data["key"])
        if not result.valid:
            body = {"valid": False, "reason": result.reason}
        else:
            body = {
                "valid": True,
                "apiKeyId": result.api_key_id,
                "userId": result.user_id,
                "orgId": result.org_id,
                "scopes": list(result.scopes),
                "remainingCredits": result.remaining_credits,
                "status": result.status,
            }
        return Response(self.OutputSerializer(body).data, status=status.HTTP_200_OK)
