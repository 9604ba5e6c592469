"""Hostile bodies on POST /api/usage/report: each a 4xx with the envelope, never a 500, nothing changed."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from credits.models import Account, Entry, Transaction
from credits.selectors import verify_ledger
from usage.models import UsageEvent

OK = {"creditsUsed": 5, "queryType": "standard"}


def _iso(delta: timedelta) -> str:
    return (timezone.now() + delta).isoformat()


# (name, fields to merge into a valid body (None value: remove the field), expected status)
FIELD_CASES = [
    ("credits as a string", {"creditsUsed": "5"}, 400),
    ("credits as a float", {"creditsUsed": 5.0}, 400),
    ("credits as a boolean", {"creditsUsed": True}, 400),
    ("zero credits", {"creditsUsed": 0}, 400),
    ("negative credits", {"creditsUsed": -5}, 400),
    ("too many credits", {"creditsUsed": 1_000_001}, 400),
    ("huge credits", {"creditsUsed": 10**30}, 400),
    ("credits missing", {"creditsUsed": None}, 400),
    ("credits null", {"creditsUsed": "__null__"}, 400),
    ("user id as a string", {"userId": "123"}, 400),
    ("user id 2^63", {"userId": 2**63}, 400),
    ("user id zero", {"userId": 0}, 400),
    ("user id missing", {"userId": None}, 400),
    ("api key id negative", {"apiKeyId": -1}, 400),
    ("api key id 2^63", {"apiKeyId": 2**63}, 400),
    ("api key id as a list", {"apiKeyId": [1]}, 400),
    ("empty query type", {"queryType": ""}, 400),
    ("upper-case query type", {"queryType": "Standard"}, 400),
    ("unicode query type", {"queryType": "stándard"}, 400),
    ("emoji query type", {"queryType": "\U0001f4a5"}, 400),
    ("SQL in query type", {"queryType": "standard'; DROP TABLE usage_usageevent; --"}, 400),
    ("65-character query type", {"queryType": "a" * 65}, 400),
    ("numeric query type", {"queryType": 123}, 400),
    ("query type with a trailing newline", {"queryType": "standard\n"}, 400),
    ("query type with a NUL", {"queryType": "stan\x00dard"}, 400),
    ("metadata as a list", {"metadata": [1, 2]}, 400),
    ("metadata as a string", {"metadata": "rows=1000"}, 400),
    ("metadata over 8192 bytes", {"metadata": {"blob": "x" * 8200}}, 400),
    ("metadata over 8192 bytes in UTF-8", {"metadata": {"blob": "é" * 4100}}, 400),
    ("metadata with a NUL", {"metadata": {"a": "b\x00c"}}, 400),
    ("metadata key with a NUL", {"metadata": {"a\x00": 1}}, 400),
    ("far-future occurredAt", {"occurredAt": "2099-01-01T00:00:00Z"}, 400),
    ("occurredAt 10 minutes ahead", {"occurredAt": "__future__"}, 400),
    ("occurredAt 31 days ago", {"occurredAt": "__past__"}, 400),
    ("occurredAt without a zone", {"occurredAt": "2026-11-21T10:00:00"}, 400),
    ("occurredAt as a date only", {"occurredAt": "2026-11-21"}, 400),
    ("occurredAt as words", {"occurredAt": "yesterday"}, 400),
    ("occurredAt as a number", {"occurredAt": 1763719200}, 400),
    ("occurredAt in year 1", {"occurredAt": "0001-01-01T00:00:00+14:00"}, 400),
    ("occurredAt with a trailing NUL", {"occurredAt": "__now__Z\x00"}, 400),
    ("occurredAt with a NUL before its zone", {"occurredAt": "__now__\x00Z"}, 400),
    ("occurredAt with a space before Z", {"occurredAt": "__now__ Z"}, 400),
    ("occurredAt with a dot and no fraction", {"occurredAt": "__now__.Z"}, 400),
    ("empty event id", {"eventId": ""}, 400),
    ("event id with a space", {"eventId": "a b"}, 400),
    ("129-character event id", {"eventId": "e" * 129}, 400),
    ("numeric event id", {"eventId": 42}, 400),
    ("event id with SQL", {"eventId": "x' OR '1'='1"}, 400),
]


def _body(report_body, fields):
    body = report_body(**OK)
    for key, value in fields.items():
        if value is None:
            body.pop(key, None)
        elif value == "__null__":
            body[key] = None
        elif value == "__future__":
            body[key] = _iso(timedelta(minutes=10))
        elif value == "__past__":
            body[key] = _iso(-timedelta(days=31))
        elif isinstance(value, str) and value.startswith("__now__"):
            # now, in seconds, without its zone, then the suffix
            body[key] = timezone.now().strftime("%Y-%m-%dT%H:%M:%S") + value.removeprefix("__now__")
        else:
            body[key] = value
    return body


def _raw(report_body, text_template: str) -> bytes:
    valid = report_body(**OK)
    return text_template.replace("$U", str(valid["userId"])).replace("$K", str(valid["apiKeyId"])).encode("utf-8")


# (name, raw body, content type, expected status)
RAW_CASES = [
    ("invalid JSON", b'{"userId": 1,', "application/json", 400),
    ("a JSON list", b"[1, 2, 3]", "application/json", 400),
    ("a JSON string", b'"hello"', "application/json", 400),
    ("JSON null", b"null", "application/json", 400),
    ("an empty body", b"", "application/json", 400),
    ("NaN", b'{"userId": $U, "apiKeyId": $K, "creditsUsed": NaN, "queryType": "standard"}', "application/json", 400),
    (
        "an overflowing float in metadata",
        b'{"userId": $U, "apiKeyId": $K, "creditsUsed": 1, "queryType": "standard", "metadata": {"x": 1e400}}',
        "application/json",
        400,
    ),
    (
        "a lone surrogate in metadata",
        b'{"userId": $U, "apiKeyId": $K, "creditsUsed": 1, "queryType": "standard", "metadata": {"x": "\\ud800"}}',
        "application/json",
        400,
    ),
    (
        "a JSON-escaped NUL in query type",
        b'{"userId": $U, "apiKeyId": $K, "creditsUsed": 1, "queryType": "a\\u0000"}',
        "application/json",
        400,
    ),
    ("nesting 100,000 deep", b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
    (
        "credits of 5,000 digits",
        b'{"userId": $U, "apiKeyId": $K, "creditsUsed": ' + b"9" * 5000 + b', "queryType": "standard"}',
        "application/json",
        400,
    ),
    ("invalid UTF-8", b'{"queryType": "\xff\xfe"}', "application/json", 400),
    ("text/plain", b'{"userId": $U, "apiKeyId": $K, "creditsUsed": 1, "queryType": "standard"}', "text/plain", 415),
    ("a form", b"userId=$U&apiKeyId=$K&creditsUsed=1&queryType=standard", "application/x-www-form-urlencoded", 415),
    ("no content type", b'{"userId": $U, "apiKeyId": $K, "creditsUsed": 1, "queryType": "standard"}', "", 415),
]


@pytest.fixture
def ledger_snapshot(funded):
    def snapshot():
        return (
            Account.objects.get(organization=funded).balance,
            Account.objects.get(organization=funded).version,
            Transaction.objects.count(),
            Entry.objects.count(),
            UsageEvent.objects.count(),
        )

    return snapshot


def _assert_envelope(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:300])
    body = response.json()
    assert body["success"] is False
    assert isinstance(body["error"], str) and isinstance(body["detail"], str)
    return body


def test_there_are_at_least_25_hostile_bodies():
    assert len(FIELD_CASES) + len(RAW_CASES) >= 25


@pytest.mark.parametrize(("name", "fields", "status"), FIELD_CASES, ids=[case[0] for case in FIELD_CASES])
def test_a_hostile_field_is_a_400_and_changes_nothing(name, fields, status, post_report, report_body, ledger_snapshot):
    before = ledger_snapshot()

    response = post_report(_body(report_body, fields))

    body = _assert_envelope(response, status)
    assert body["error"] == "validation_error"
    assert body["fields"], body
    assert ledger_snapshot() == before
    assert verify_ledger().ok


@pytest.mark.parametrize(("name", "raw", "content_type", "status"), RAW_CASES, ids=[case[0] for case in RAW_CASES])
def test_a_hostile_raw_body_is_a_4xx_and_changes_nothing(
    name, raw, content_type, status, service_client, report_body, ledger_snapshot
):
    before = ledger_snapshot()
    data = raw.replace(b"$U", str(report_body()["userId"]).encode()).replace(
        b"$K", str(report_body()["apiKeyId"]).encode()
    )

    response = service_client.generic("POST", "/api/usage/report", data=data, content_type=content_type)

    body = _assert_envelope(response, status)
    assert body["error"] == ("unsupported_media_type" if status == 415 else "validation_error")
    if status == 415:
        assert body["fields"]["non_field_errors"]
    assert ledger_snapshot() == before


def test_a_number_too_long_for_python_is_a_plain_400(service_client, report_body):
    data = json.dumps({**report_body(), "metadata": {"n": 1}}).replace('"n": 1', '"n": -' + "1" * 4301)

    response = service_client.generic("POST", "/api/usage/report", data=data, content_type="application/json")

    body = _assert_envelope(response, 400)
    assert body["fields"]["non_field_errors"] == ["JSON parse error - a number has more than 4300 digits."]


def test_a_long_number_python_can_read_is_metadata_like_any_other(post_report, report_body):
    body = json.dumps({**report_body(), "metadata": {"n": 1}}).replace('"n": 1', '"n": -' + "1" * 4300)

    response = post_report(json.loads(body))

    assert response.status_code == 201, response.content[:300]


def test_an_invalid_idempotency_key_header_is_a_400(post_report, report_body, ledger_snapshot):
    before = ledger_snapshot()

    body = _assert_envelope(post_report(report_body(), HTTP_IDEMPOTENCY_KEY="not ok!"), 400)

    assert "Idempotency-Key" in body["fields"]
    assert ledger_snapshot() == before


def test_a_body_over_5_mib_is_a_413(service_client, ledger_snapshot):
    before = ledger_snapshot()
    data = json.dumps({"metadata": {"x": "y" * (5 * 1024 * 1024)}}).encode()

    response = service_client.generic("POST", "/api/usage/report", data=data, content_type="application/json")

    assert _assert_envelope(response, 413)["error"] == "payload_too_large"
    assert ledger_snapshot() == before


def test_a_get_is_a_405(service_client):
    assert _assert_envelope(service_client.get("/api/usage/report"), 405)["error"] == "method_not_allowed"
