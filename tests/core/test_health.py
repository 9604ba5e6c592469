import pytest


def test_health_answers_ok_while_the_process_runs(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_ready_is_ok_when_the_database_answers(client):
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["checks"]["database"] == "ok"


@pytest.mark.django_db
def test_ready_is_503_when_redis_is_configured_but_down(client, settings):
    from core import redis as core_redis

    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    core_redis.set_redis_client(None)
    core_redis._client_from_settings.cache_clear()
    try:
        response = client.get("/ready")
    finally:
        core_redis._client_from_settings.cache_clear()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] != "ok"


def test_unknown_api_path_is_a_404_envelope(client, db):
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"success": False, "error": "not_found", "detail": "Not found."}


def test_oversized_api_body_is_a_413_envelope(client, db):
    response = client.generic(
        "POST", "/api/usage/report", data=b"x", content_type="application/json", CONTENT_LENGTH=str(6 * 1024 * 1024)
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/health", "/ready"])
def test_health_checks_answer_head_requests(client, path):
    # Load balancers and uptime checks often probe with HEAD (found from outside: 405).
    response = client.head(path)
    assert response.status_code == 200
    assert response.content == b""


def test_health_refuses_writes(client):
    assert client.post("/health").status_code == 405
