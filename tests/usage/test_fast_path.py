"""The service API's hot endpoints skip the session-side middleware (core.middleware.ServiceApiFastPathMiddleware)."""

import pytest
from rest_framework.test import APIClient

from core import middleware


@pytest.fixture
def below_fast_path(monkeypatch):
    """Records the requests that reach the middleware below the fast path."""
    reached = []
    real_call = middleware.ServiceApiFastPathMiddleware.__call__

    def call(self, request):
        real_get_response = self.get_response

        def get_response(request):
            reached.append(request.path)
            return real_get_response(request)

        self.get_response = get_response
        try:
            return real_call(self, request)
        finally:
            self.get_response = real_get_response

    monkeypatch.setattr(middleware.ServiceApiFastPathMiddleware, "__call__", call)
    return reached


def test_a_service_report_skips_the_session_middleware_and_keeps_the_contract(
    post_report, report_body, below_fast_path
):
    response = post_report(report_body(eventId="evt-fast"))

    assert response.status_code == 201
    assert below_fast_path == []
    assert response["Content-Type"] == "application/json"
    assert int(response["Content-Length"]) == len(response.content)
    assert response["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware still runs
    assert "sessionid" not in response.cookies


def test_errors_on_the_fast_path_keep_the_envelope(service_client, below_fast_path):
    response = service_client.post("/api/usage/report", "not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"

    response = service_client.get("/api/usage/report")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert below_fast_path == []


def test_a_request_with_a_session_takes_the_normal_path(owner, report_body, below_fast_path):
    client = APIClient()
    client.force_login(owner)

    response = client.post("/api/usage/report", report_body(), format="json")

    assert response.status_code == 403  # a logged-in customer is not the query API
    assert below_fast_path == ["/api/usage/report"]


def test_other_api_paths_take_the_normal_path(service_client, below_fast_path):
    service_client.get("/api/usage/report/")
    assert below_fast_path == ["/api/usage/report/"]


def test_the_fast_path_answers_only_to_allowed_hosts(post_report, report_body, below_fast_path, settings, organization):
    """Found from outside: a report with any Host header was recorded, while every other path
    answered 400 to a host not in ALLOWED_HOSTS."""
    from credits.selectors import get_balance

    settings.ALLOWED_HOSTS = ["creditdesk.example.com"]
    balance = get_balance(organization_id=organization.pk)

    response = post_report(report_body(eventId="evt-host"), HTTP_HOST="10.0.0.5")

    assert response.status_code == 400
    assert get_balance(organization_id=organization.pk) == balance
    assert post_report(report_body(eventId="evt-host"), HTTP_HOST="creditdesk.example.com").status_code == 201
