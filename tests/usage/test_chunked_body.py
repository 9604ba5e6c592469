"""A chunked request body (no Content-Length) reaches the views (config.wsgi, core.wsgi)."""

import io
import json
from wsgiref.util import setup_testing_defaults

import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from core.wsgi import ChunkedBodyMiddleware


def call(app, path, body: bytes, **headers):
    """`body` as the server (granian) hands over a chunked one: decoded, no CONTENT_LENGTH, the stream terminated."""
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "CONTENT_TYPE": "application/json",
        "HTTP_TRANSFER_ENCODING": "chunked",
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        **headers,
    }
    setup_testing_defaults(environ)
    environ.pop("CONTENT_LENGTH", None)
    answer = {}

    def start_response(status, response_headers, exc_info=None):
        answer["status"] = int(status.split()[0])

    content = b"".join(app(environ, start_response))
    return answer["status"], json.loads(content)


@pytest.fixture
def app():
    # As django.test.Client does: the handler must not close the test's connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield ChunkedBodyMiddleware(WSGIHandler(), limit=settings.API_MAX_BODY_BYTES)
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_a_chunked_report_is_read_whole(app, service_token, report_body, organization):
    body = json.dumps(report_body(eventId="chunked-1")).encode()

    status, answer = call(app, "/api/usage/report", body, HTTP_AUTHORIZATION=f"Token {service_token}")

    assert (status, answer["success"], answer["remainingCredits"]) == (201, True, 95)


def test_a_chunked_body_over_the_limit_is_a_413(app, service_token):
    body = b"[" + b" " * settings.API_MAX_BODY_BYTES + b"]"

    status, answer = call(app, "/api/usage/report", body, HTTP_AUTHORIZATION=f"Token {service_token}")

    assert (status, answer["error"]) == (413, "payload_too_large")
