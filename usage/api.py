"""The usage APIs: the service API of the contract (section 1) and the customer's usage.

Service endpoints (`Authorization: Token <service token>`): POST /api/usage/report,
POST /api/usage/report/batch, GET /api/users/{userId}/credits (also the user's own session
and staff). Customer endpoints (session or `Authorization: Bearer cdk_live_...`):
GET /api/usage and GET /api/usage/summary, both also as CSV with `?format=csv`.
"""

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, renderers, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Membership
from accounts.scoping import scope_queryset
from apikeys.authentication import SERVICE_AUTHENTICATION_CLASSES, ApiKeyAuthentication, CachedTokenAuthentication
from apikeys.permissions import IsServiceAccount
from core.api import parse_positive_id, read_json_object
from core.schema import ErrorSerializer, error_example
from credits.models import Account
from usage import selectors, services
from usage.errors import UnknownUser
from usage.models import UsageEvent
from usage.serializers import (
    MAX_CREDITS,
    IdField,
    UsageReportInputSerializer,
    event_id_error,
    event_id_field,
    plain_report,
    query_type_field,
)


def iso_utc(value: datetime) -> str:
    """ISO-8601 in UTC ending in Z, always with microseconds (a replay prints the same text)."""
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


AUTH_ERRORS = [
    error_example("No credentials", "not_authenticated", "Authentication credentials were not provided.", 401),
    error_example("Not a service token", "permission_denied", "Only service accounts may call this endpoint.", 403),
]
EXAMPLE_TIME = "2026-11-21T10:00:00.123456Z"
EXAMPLE_TRANSACTION = "8a5f2d1e-3c4b-4e6f-9a7b-1c2d3e4f5a6b"
EXAMPLE_REPORT = {
    "userId": 123,
    "apiKeyId": 456,
    "creditsUsed": 5,
    "queryType": "standard",
    "metadata": {"rows": 1000},
    "eventId": "q-2026-11-21-000001",
    "occurredAt": "2026-11-21T10:00:00Z",
}
EXAMPLE_RECORDED = {
    "success": True,
    "remainingCredits": 95,
    "usageDateTime": EXAMPLE_TIME,
    "usageId": 1,
    "transactionId": EXAMPLE_TRANSACTION,
    "duplicate": False,
}


class UsageReportApi(APIView):
    """POST /api/usage/report: charge one usage report (service tokens only)."""

    authentication_classes = SERVICE_AUTHENTICATION_CLASSES
    permission_classes = [IsServiceAccount]

    InputSerializer = UsageReportInputSerializer

    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        remainingCredits = serializers.IntegerField(help_text="The wallet's balance right after this usage.")
        usageDateTime = serializers.CharField(help_text="When it was recorded: ISO-8601 UTC ending in Z.")
        usageId = serializers.IntegerField()
        transactionId = serializers.UUIDField(help_text="The ledger transaction that charged it.")
        duplicate = serializers.BooleanField(help_text="True on a replay of an earlier report with the same key.")

    @extend_schema(
        operation_id="usage_report",
        summary="Report usage",
        description=(
            "Charges `creditsUsed` to the user's organization's wallet and records the usage. "
            "Idempotent by `eventId` or the `Idempotency-Key` header (one key space per organization, "
            "kept 7 days): the same payload again returns the first answer with status 200 and "
            '`"duplicate": true`; another payload is a 409. When several outcomes apply the first of '
            "these wins: 401/403 credentials, 400 validation, 404 unknown_user, 200/409 replay or conflict, "
            "404 unknown_api_key, 403 api_key_revoked, api_key_expired, credits_paused, query_type_not_allowed, "
            "402 insufficient_credits."
        ),
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="Same as `eventId`; if both are given they must be equal.",
            )
        ],
        request=UsageReportInputSerializer,
        responses={
            201: OutputSerializer,
            200: OpenApiResponse(OutputSerializer, description="A replay: the first answer, duplicate true."),
            400: ErrorSerializer,
            401: ErrorSerializer,
            402: ErrorSerializer,
            403: ErrorSerializer,
            404: ErrorSerializer,
            409: ErrorSerializer,
            415: ErrorSerializer,
        },
        examples=[
            OpenApiExample("Report", value=EXAMPLE_REPORT, request_only=True),
            OpenApiExample("Recorded", value=EXAMPLE_RECORDED, response_only=True, status_codes=["201"]),
            OpenApiExample(
                "Replay", value={**EXAMPLE_RECORDED, "duplicate": True}, response_only=True, status_codes=["200"]
            ),
            error_example(
                "Invalid fields",
                "validation_error",
                "Invalid input.",
                400,
                fields={"creditsUsed": ["Must be a JSON integer."], "queryType": ["This field is required."]},
            ),
            *AUTH_ERRORS,
            error_example("Not enough credits", "insufficient_credits", "Not enough credits.", 402, remainingCredits=3),
            error_example("Key revoked", "api_key_revoked", "The API key was revoked.", 403),
            error_example("Key expired", "api_key_expired", "The API key has expired.", 403),
            error_example("Wallet paused", "credits_paused", "The organization's credits are paused.", 403),
            error_example(
                "Query type not in plan",
                "query_type_not_allowed",
                "The organization's plan does not allow this query type.",
                403,
            ),
            error_example("Unknown user", "unknown_user", "No such user, or the user belongs to no organization.", 404),
            error_example("Unknown key", "unknown_api_key", "No such API key in the user's organization.", 404),
            error_example(
                "Other payload, same key",
                "idempotency_conflict",
                "This idempotency key was already used with other parameters.",
                409,
            ),
            error_example(
                "Not JSON",
                "unsupported_media_type",
                "Send the body as JSON with the header Content-Type: application/json.",
                415,
                fields={"non_field_errors": ["Send the body as JSON with the header Content-Type: application/json."]},
            ),
        ],
        tags=["service"],
    )
    def post(self, request: Request) -> Response:
        body = read_json_object(request)
        data = plain_report(body) or _REPORT_INPUT.run_validation(body)
        idempotency_key = _idempotency_key(data.get("eventId"), request.headers.get("Idempotency-Key"))
        report = services.UsageReport(
            user_id=data["userId"],
            api_key_id=data["apiKeyId"],
            credits=data["creditsUsed"],
            query_type=data["queryType"],
            metadata=data.get("metadata"),
            occurred_at=data.get("occurredAt"),
            idempotency_key=idempotency_key,
        )
        outcome = services.record_usage(report=report)
        body = {
            "success": True,
            "remainingCredits": outcome.remaining_credits,
            "usageDateTime": iso_utc(outcome.recorded_at),
            "usageId": outcome.usage_id,
            "transactionId": outcome.transaction_id,
            "duplicate": outcome.duplicate,
        }
        return Response(
            _REPORT_OUTPUT.to_representation(body),
            status=status.HTTP_200_OK if outcome.duplicate else status.HTTP_201_CREATED,
        )


# Bound once: building a serializer deep-copies its fields, a measurable share of a report's
# CPU. Both are stateless between calls (run_validation raises, to_representation returns).
_REPORT_INPUT = UsageReportApi.InputSerializer()
_REPORT_OUTPUT = UsageReportApi.OutputSerializer()


def _idempotency_key(event_id: str | None, header: str | None) -> str | None:
    if header is None:
        return event_id
    if (errors := event_id_error(header)) is not None:
        raise exceptions.ValidationError({"Idempotency-Key": errors})
    if event_id is not None and event_id != header:
        raise exceptions.ValidationError({"eventId": ["Differs from the Idempotency-Key header."]})
    return header


class UsageReportBatchApi(APIView):
    """POST /api/usage/report/batch: up to 500 reports, applied in order, each with its own outcome."""

    authentication_classes = SERVICE_AUTHENTICATION_CLASSES
    permission_classes = [IsServiceAccount]

    class EventSerializer(UsageReportInputSerializer):
        eventId = event_id_field(help_text="Required in a batch: the event's idempotency key.")

    class InputSerializer(serializers.Serializer):
        events = serializers.ListField(
            child=serializers.JSONField(allow_null=True),  # a null entry is rejected alone, as any non-object
            min_length=1,
            max_length=services.MAX_BATCH_EVENTS,
            help_text="1 to 500 report objects, each with an eventId (see POST /api/usage/report).",
        )

    class ResultSerializer(serializers.Serializer):
        eventId = serializers.CharField(allow_null=True)
        status = serializers.ChoiceField(choices=["recorded", "duplicate", "rejected"])
        error = serializers.CharField(required=False, help_text="The error code, when rejected.")
        fields = serializers.DictField(required=False, help_text="validation_error only: messages per field.")
        remainingCredits = serializers.IntegerField(
            allow_null=True, help_text="The wallet's balance after this event; null when no known wallet."
        )

    class OutputSerializer(serializers.Serializer):
        results = serializers.ListField(child=serializers.DictField())
        recorded = serializers.IntegerField()
        duplicates = serializers.IntegerField()
        rejected = serializers.IntegerField()

    @extend_schema(
        operation_id="usage_report_batch",
        summary="Report usage in a batch",
        description=(
            "Up to 500 events, applied in order; one rejected event does not reject the others. Each event "
            "needs an `eventId`. The same `eventId` twice: the second is a `duplicate` (or rejected with "
            "`idempotency_conflict` when its payload differs); a repeated `eventId` whose first copy was "
            "rejected is tried again. Entries that are not objects are rejected alone (eventId null). "
            "Events of several organizations may share a batch. The Idempotency-Key header is ignored."
        ),
        request=InputSerializer,
        responses={200: OutputSerializer, 400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer},
        examples=[
            OpenApiExample(
                "Batch",
                value={
                    "events": [
                        {**EXAMPLE_REPORT, "eventId": "evt-1"},
                        {**EXAMPLE_REPORT, "eventId": "evt-1"},
                        {**EXAMPLE_REPORT, "eventId": "evt-2", "creditsUsed": 500},
                        {**EXAMPLE_REPORT, "eventId": "evt-3", "creditsUsed": "5"},
                        42,
                    ]
                },
                request_only=True,
            ),
            OpenApiExample(
                "Results",
                value={
                    "results": [
                        {"eventId": "evt-1", "status": "recorded", "remainingCredits": 95},
                        {"eventId": "evt-1", "status": "duplicate", "remainingCredits": 95},
                        {
                            "eventId": "evt-2",
                            "status": "rejected",
                            "error": "insufficient_credits",
                            "remainingCredits": 95,
                        },
                        {
                            "eventId": "evt-3",
                            "status": "rejected",
                            "error": "validation_error",
                            "fields": {"creditsUsed": ["Must be a JSON integer."]},
                            "remainingCredits": 95,
                        },
                        {
                            "eventId": None,
                            "status": "rejected",
                            "error": "validation_error",
                            "fields": {"non_field_errors": ["Must be a JSON object."]},
                            "remainingCredits": None,
                        },
                    ],
                    "recorded": 1,
                    "duplicates": 1,
                    "rejected": 3,
                },
                response_only=True,
                status_codes=["200"],
            ),
            error_example(
                "Not a batch",
                "validation_error",
                "Invalid input.",
                400,
                fields={"events": ["Ensure this field has no more than 500 elements."]},
            ),
            *AUTH_ERRORS,
        ],
        tags=["service"],
    )
    def post(self, request: Request) -> Response:
        data = read_json_object(request)
        events = data.get("events") if type(data) is dict else None
        if type(events) is not list or not 1 <= len(events) <= services.MAX_BATCH_EVENTS:
            # Only a malformed envelope goes through DRF (for its messages): its JSONField
            # child JSON-encodes every event to check it, which parsed JSON always passes.
            serializer = self.InputSerializer(data=data)
            serializer.is_valid(raise_exception=True)
            events = serializer.validated_data["events"]
        event_serializer = self.EventSerializer()
        items = [_batch_item(event_serializer, entry) for entry in events]
        results = services.record_usage_batch(items=items)
        counts = {"recorded": 0, "duplicate": 0, "rejected": 0}
        body_results = []
        for result in results:
            counts[result.status] += 1
            row: dict[str, Any] = {"eventId": result.event_id, "status": result.status}
            if result.error:
                row["error"] = result.error
            if result.fields:
                row["fields"] = result.fields
            row["remainingCredits"] = result.remaining_credits
            body_results.append(row)
        body = {
            "results": body_results,
            "recorded": counts["recorded"],
            "duplicates": counts["duplicate"],
            "rejected": counts["rejected"],
        }
        return Response(body, status=status.HTTP_200_OK)


def _batch_item(event_serializer: serializers.Serializer, entry: Any) -> services.BatchItem:
    if not isinstance(entry, dict):
        return services.BatchItem(None, fields={"non_field_errors": ["Must be a JSON object."]})
    raw_event_id = entry.get("eventId")
    event_id = raw_event_id if event_id_error(raw_event_id) is None else None
    try:
        data = plain_report(entry) or event_serializer.run_validation(entry)
    except exceptions.ValidationError as exc:
        from core.api import validation_fields

        user_id = entry.get("userId")
        valid_user = isinstance(user_id, int) and not isinstance(user_id, bool) and 1 <= user_id < 2**63
        return services.BatchItem(
            event_id, user_id=user_id if valid_user else None, fields=validation_fields(exc.detail)
        )
    report = services.UsageReport(
        user_id=data["userId"],
        api_key_id=data["apiKeyId"],
        credits=data["creditsUsed"],
        query_type=data["queryType"],
        metadata=data.get("metadata"),
        occurred_at=data.get("occurredAt"),
        idempotency_key=data["eventId"],
    )
    return services.BatchItem(event_id, report=report)


class UserCreditsApi(APIView):
    """GET /api/users/{userId}/credits: a user's organization's wallet."""

    authentication_classes = [CachedTokenAuthentication, SessionAuthentication, ApiKeyAuthentication]
    permission_classes = [IsAuthenticated]

    class OutputSerializer(serializers.Serializer):
        userId = serializers.IntegerField()
        orgId = serializers.IntegerField()
        credits = serializers.IntegerField(help_text="The wallet's balance.")
        status = serializers.ChoiceField(choices=["active", "paused"])
        lowCreditThreshold = serializers.IntegerField(allow_null=True)
        updatedAt = serializers.CharField(help_text="When the wallet last changed (ISO-8601 UTC).")

    @extend_schema(
        operation_id="user_credits",
        summary="A user's credits",
        description=(
            "Readable with a service token, by that user's own session, and by staff; anyone else, an "
            "unknown user or a user with no organization: 404 unknown_user. A customer API key (Bearer) is "
            "not a service token: 403 permission_denied. `userId` must be an integer from 1 to 2^63-1 (else 400)."
        ),
        parameters=[OpenApiParameter("userId", OpenApiTypes.INT64, OpenApiParameter.PATH)],
        responses={
            200: OutputSerializer,
            400: ErrorSerializer,
            401: ErrorSerializer,
            403: ErrorSerializer,
            404: ErrorSerializer,
        },
        examples=[
            OpenApiExample(
                "Credits",
                value={
                    "userId": 123,
                    "orgId": 7,
                    "credits": 95,
                    "status": "active",
                    "lowCreditThreshold": 100,
                    "updatedAt": EXAMPLE_TIME,
                },
                response_only=True,
                status_codes=["200"],
            ),
            error_example(
                "Bad id",
                "validation_error",
                "Invalid input.",
                400,
                fields={"userId": ["Must be an integer from 1 to 2^63-1."]},
            ),
            AUTH_ERRORS[0],
            error_example(
                "A customer API key",
                "permission_denied",
                "A customer API key cannot read this; use a service token.",
                403,
            ),
            error_example("Unknown user", "unknown_user", "No such user, or the user belongs to no organization.", 404),
        ],
        tags=["service"],
    )
    def get(self, request: Request, userId: str) -> Response:
        target = parse_positive_id(userId, field="userId")
        user = request.user
        if request.auth is not None and not isinstance(request.auth, Token):
            # A customer's API key is not a service token (contract, section 1): 403, as on
            # the other service endpoints; only a session is "that user's own".
            raise exceptions.PermissionDenied("A customer API key cannot read this; use a service token.")
        is_service = getattr(user, "is_service", False) and isinstance(request.auth, Token)
        own_session = request.auth is None and (user.is_staff or user.pk == target)
        if not (is_service or own_session):
            raise UnknownUser()
        row = (
            Membership.objects.filter(user_id=target)
            .values(
                "organization_id",
                "organization__wallet__balance",
                "organization__wallet__status",
                "organization__wallet__low_credit_threshold",
                "organization__wallet__updated_at",
            )
            .first()
        )
        if row is None or row["organization__wallet__balance"] is None:
            raise UnknownUser()
        body = {
            "userId": target,
            "orgId": row["organization_id"],
            "credits": row["organization__wallet__balance"],
            "status": row["organization__wallet__status"] or Account.Status.ACTIVE,
            "lowCreditThreshold": row["organization__wallet__low_credit_threshold"],
            "updatedAt": iso_utc(row["organization__wallet__updated_at"]),
        }
        return Response(self.OutputSerializer(body).data)


# --- The customer's usage ------------------------------------------------------------------


class CSVRenderer(renderers.BaseRenderer):
    """Selects CSV (`?format=csv` or Accept: text/csv); the views stream the CSV themselves."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return json.dumps(data).encode() if data is not None else b""


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_response(filename: str, header: list[str], rows: Iterator[list[Any]]) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow([_csv_cell(value) for value in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class UsageFilterSerializer(serializers.Serializer):
    """Query-string filters; dates are UTC days of when the usage was recorded."""

    date_from = serializers.DateField(required=False, help_text="First day (YYYY-MM-DD, UTC), inclusive.")
    date_to = serializers.DateField(required=False, help_text="Last day (YYYY-MM-DD, UTC), inclusive.")
    apiKeyId = IdField(required=False)
    queryType = query_type_field(required=False)

    # `from` is a Python keyword, so the dates have other names here than in the query string.
    PARAMETERS = {"from": "date_from", "to": "date_to", "apiKeyId": "apiKeyId", "queryType": "queryType"}

    def to_internal_value(self, data: Any) -> Any:
        values = {field: data.get(name) for name, field in self.PARAMETERS.items() if data.get(name) is not None}
        # Query strings are text: parse the id here, the strict fields then see an int.
        if "apiKeyId" in values:
            values["apiKeyId"] = parse_positive_id(values["apiKeyId"], field="apiKeyId")
        try:
            result = super().to_internal_value(values)
        except exceptions.ValidationError as error:
            names = {field: name for name, field in self.PARAMETERS.items()}
            detail = {names.get(field, field): messages for field, messages in error.detail.items()}
            raise exceptions.ValidationError(detail)
        if result.get("date_from") and result.get("date_to") and result["date_from"] > result["date_to"]:
            raise exceptions.ValidationError({"from": ["Must not be after `to`."]})
        return result

    def filters(self) -> selectors.UsageFilters:
        data = self.validated_data
        return selectors.UsageFilters(
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            api_key_id=data.get("apiKeyId"),
            query_type=data.get("queryType"),
        )


FILTER_PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.DATE, description="First day (UTC), inclusive."),
    OpenApiParameter("to", OpenApiTypes.DATE, description="Last day (UTC), inclusive."),
    OpenApiParameter("apiKeyId", OpenApiTypes.INT64, description="Only this API key's usage."),
    OpenApiParameter("queryType", OpenApiTypes.STR, description="Only this query type."),
    OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv"], description="csv: a CSV download."),
]
# The key class first: no credentials is then a 401 (DRF answers 401 only when the first class has a header).
CUSTOMER_AUTH = [ApiKeyAuthentication, SessionAuthentication]


class CustomerUsageApi(APIView):
    authentication_classes = CUSTOMER_AUTH
    permission_classes = [IsAuthenticated]
    renderer_classes = [renderers.JSONRenderer, CSVRenderer]

    def handle_exception(self, exc: Exception) -> Response:
        # Errors are always the JSON envelope, even when CSV was asked for.
        self.request.accepted_renderer = renderers.JSONRenderer()
        self.request.accepted_media_type = "application/json"
        return super().handle_exception(exc)

    def wants_csv(self, request: Request) -> bool:
        return getattr(request.accepted_renderer, "format", "json") == "csv"

    def read_filters(self, request: Request) -> selectors.UsageFilters:
        serializer = UsageFilterSerializer(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        return serializer.filters()


def usage_row(event: UsageEvent) -> dict[str, Any]:
    return {
        "usageId": event.pk,
        "usageDateTime": iso_utc(event.recorded_at),
        "occurredAt": iso_utc(event.occurred_at),
        "eventId": event.idempotency_key,
        "queryType": event.query_type,
        "creditsUsed": event.credits,
        "remainingCredits": event.remaining_credits,
        "apiKeyId": event.api_key_id,
        "apiKeyPrefix": event.api_key.prefix,
        "userId": event.user_id,
        "transactionId": str(event.transaction_id),
        "metadata": event.metadata,
    }


USAGE_CSV_HEADER = [
    "usageId",
    "usageDateTime",
    "occurredAt",
    "eventId",
    "queryType",
    "creditsUsed",
    "remainingCredits",
    "apiKeyId",
    "apiKeyPrefix",
    "userId",
    "transactionId",
    "metadata",
]


class UsageListApi(CustomerUsageApi):
    """GET /api/usage: the organization's usage, newest first, by keyset pages (or all of it as CSV)."""

    class OutputSerializer(serializers.Serializer):
        results = serializers.ListField(child=serializers.DictField())
        nextCursor = serializers.CharField(allow_null=True, help_text="Pass as `cursor` for the next page.")

    @extend_schema(
        operation_id="usage_list",
        summary="List usage",
        description=(
            "The organization's usage events, newest first. Pages of `limit` (1-500, default 100); "
            "`nextCursor` is null on the last page. With `format=csv`, every matching event as one CSV "
            "file. Session or `Authorization: Bearer cdk_live_...`."
        ),
        parameters=[
            *FILTER_PARAMETERS,
            OpenApiParameter("cursor", OpenApiTypes.STR, description="nextCursor of the previous page."),
            OpenApiParameter("limit", OpenApiTypes.INT, description="1 to 500, default 100."),
        ],
        responses={
            200: OpenApiResponse(OutputSerializer, description="JSON; or text/csv with format=csv."),
            400: ErrorSerializer,
            401: ErrorSerializer,
        },
        examples=[
            OpenApiExample(
                "Page",
                value={
                    "results": [
                        {
                            "usageId": 1,
                            "usageDateTime": EXAMPLE_TIME,
                            "occurredAt": "2026-11-21T10:00:00.000000Z",
                            "eventId": "q-2026-11-21-000001",
                            "queryType": "standard",
                            "creditsUsed": 5,
                            "remainingCredits": 95,
                            "apiKeyId": 456,
                            "apiKeyPrefix": "cdk_live_Ab1",
                            "userId": 123,
                            "transactionId": EXAMPLE_TRANSACTION,
                            "metadata": {"rows": 1000},
                        }
                    ],
                    "nextCursor": None,
                },
                response_only=True,
                status_codes=["200"],
            ),
            error_example(
                "Bad filter", "validation_error", "Invalid input.", 400, fields={"from": ["Enter a valid date."]}
            ),
            error_example("No credentials", "not_authenticated", "Authentication credentials were not provided.", 401),
        ],
        tags=["customer"],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response | StreamingHttpResponse:
        filters = self.read_filters(request)
        queryset = scope_queryset(request, UsageEvent.objects.all())
        if self.wants_csv(request):
            rows = (list(usage_row(event).values()) for event in selectors.iter_usage(queryset, filters=filters))
            return _csv_response("usage.csv", USAGE_CSV_HEADER, rows)
        limit = _limit(request.query_params.get("limit"))
        after = None
        if cursor := request.query_params.get("cursor"):
            after = selectors.decode_cursor(cursor)
            if after is None:
                raise exceptions.ValidationError({"cursor": ["Not a cursor from this API."]})
        events, next_position = selectors.list_usage_page(queryset, filters=filters, after=after, limit=limit)
        body = {
            "results": [usage_row(event) for event in events],
            "nextCursor": selectors.encode_cursor(*next_position) if next_position else None,
        }
        return Response(self.OutputSerializer(body).data)


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP's "CSV
# injection"): a key named =HYPERLINK(...) must arrive as text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return "" if value is None else value


def _limit(value: str | None) -> int:
    if value is None:
        return 100
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= 500:
        raise exceptions.ValidationError({"limit": ["Must be an integer from 1 to 500."]})
    return int(value)


class UsageSummaryApi(CustomerUsageApi):
    """GET /api/usage/summary: credits and counts per day and query type, and per API key."""

    class OutputSerializer(serializers.Serializer):
        dateFrom = serializers.DateField()
        dateTo = serializers.DateField()
        totals = serializers.DictField(child=serializers.IntegerField())
        byDay = serializers.ListField(child=serializers.DictField())
        byApiKey = serializers.ListField(child=serializers.DictField())

    @extend_schema(
        operation_id="usage_summary",
        summary="Summarize usage",
        description=(
            "Totals, credits and event counts per UTC day and query type, and per API key. Without `from` "
            "and `to`, the last 30 days. With `format=csv`, one CSV: rows of group `day` (date, queryType) "
            "then rows of group `apiKey`."
        ),
        parameters=FILTER_PARAMETERS,
        responses={
            200: OpenApiResponse(OutputSerializer, description="JSON; or text/csv with format=csv."),
            400: ErrorSerializer,
            401: ErrorSerializer,
        },
        examples=[
            OpenApiExample(
                "Summary",
                value={
                    "dateFrom": "2026-10-23",
                    "dateTo": "2026-11-21",
                    "totals": {"credits": 120, "events": 14},
                    "byDay": [{"date": "2026-11-21", "queryType": "standard", "credits": 120, "events": 14}],
                    "byApiKey": [
                        {"apiKeyId": 456, "name": "Production", "prefix": "cdk_live_Ab1", "credits": 120, "events": 14}
                    ],
                },
                response_only=True,
                status_codes=["200"],
            ),
            error_example(
                "Bad filter", "validation_error", "Invalid input.", 400, fields={"to": ["Enter a valid date."]}
            ),
            error_example("No credentials", "not_authenticated", "Authentication credentials were not provided.", 401),
        ],
        tags=["customer"],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response | StreamingHttpResponse:
        filters = self.read_filters(request)
        if filters.date_from is None and filters.date_to is None:
            today = timezone.now().astimezone(UTC).date()
            filters = selectors.UsageFilters(
                date_from=today - timedelta(days=29),
                date_to=today,
                api_key_id=filters.api_key_id,
                query_type=filters.query_type,
            )
        queryset = scope_queryset(request, UsageEvent.objects.all())
        summary = selectors.summarize_usage(queryset, filters=filters)
        if self.wants_csv(request):
            header = ["group", "date", "queryType", "apiKeyId", "apiKeyPrefix", "apiKeyName", "credits", "events"]
            rows = [
                ["day", row["date"].isoformat(), row["query_type"], "", "", "", row["credits"], row["events"]]
                for row in summary["by_day"]
            ] + [
                ["apiKey", "", "", row["api_key_id"], row["prefix"], row["name"], row["credits"], row["events"]]
                for row in summary["by_api_key"]
            ]
            return _csv_response("usage-summary.csv", header, iter(rows))
        body = {
            "dateFrom": filters.date_from,
            "dateTo": filters.date_to,
            "totals": summary["totals"],
            "byDay": [
                {
                    "date": row["date"].isoformat(),
                    "queryType": row["query_type"],
                    "credits": row["credits"],
                    "events": row["events"],
                }
                for row in summary["by_day"]
            ],
            "byApiKey": [
                {
                    "apiKeyId": row["api_key_id"],
                    "name": row["name"],
                    "prefix": row["prefix"],
                    "credits": row["credits"],
                    "events": row["events"],
                }
                for row in summary["by_api_key"]
            ],
        }
        return Response(self.OutputSerializer(body).data)


__all__ = [
    "MAX_CREDITS",
    "UsageListApi",
    "UsageReportApi",
    "UsageReportBatchApi",
    "UsageSummaryApi",
    "UserCreditsApi",
]
