"""The OpenAPI schema validates, lists every contract endpoint and shows each error with an example."""

import re

import pytest
from drf_spectacular.generators import SchemaGenerator
from openapi_spec_validator import validate

CONTRACT_PATHS = {
    "/api/usage/report": "post",
    "/api/usage/report/batch": "post",
    "/api/users/{userId}/credits": "get",
    "/api/keys/verify": "post",
    "/api/usage": "get",
    "/api/usage/summary": "get",
}


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def test_the_schema_is_valid_openapi_3(schema):
    assert schema["openapi"].startswith("3.")
    validate(schema)


@pytest.mark.parametrize(("path", "method"), CONTRACT_PATHS.items())
def test_every_contract_endpoint_is_listed(schema, path, method):
    assert method in schema["paths"][path]


def _examples(operation: dict, status: str) -> dict:
    content = operation["responses"][status].get("content", {})
    return content.get("application/json", {}).get("examples", {})


def test_the_report_documents_every_outcome_with_an_example(schema):
    operation = schema["paths"]["/api/usage/report"]["post"]
    errors = {
        example["value"]["error"]
        for status in ("400", "401", "402", "403", "404", "409", "415")
        for example in _examples(operation, status).values()
    }

    assert _examples(operation, "201") and _examples(operation, "200")
    assert operation["requestBody"]["content"]["application/json"]["examples"]
    assert errors == {
        "validation_error",
        "not_authenticated",
        "permission_denied",
        "insufficient_credits",
        "api_key_revoked",
        "api_key_expired",
        "credits_paused",
        "query_type_not_allowed",
        "unknown_user",
        "unknown_api_key",
        "idempotency_conflict",
        "unsupported_media_type",
    }


@pytest.mark.parametrize(
    ("path", "method", "statuses"),
    [
        ("/api/usage/report/batch", "post", ["200", "400", "401", "403"]),
        ("/api/users/{userId}/credits", "get", ["200", "400", "401", "404"]),
        ("/api/usage", "get", ["200", "400", "401"]),
        ("/api/usage/summary", "get", ["200", "400", "401"]),
    ],
)
def test_the_other_usage_endpoints_have_examples_for_every_status(schema, path, method, statuses):
    operation = schema["paths"][path][method]
    for status in statuses:
        assert _examples(operation, status), f"{path} {status} has no example"


def test_the_docs_page_serves_its_own_assets(client):
    page = client.get("/api/docs/").content.decode()

    assert "/static/drf_spectacular_sidecar/" in page
    assert not re.search(r"""(?:src|href)=["'](?:https?:)?//""", page), "an asset from another host"
    # Swagger UI's validator badge is an image from validator.swagger.io unless switched off.
    assert '"validatorUrl": null' in page


def _operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_every_api_error_status_has_an_example_of_the_envelope(schema):
    missing = [
        f"{method.upper()} {path} {status}"
        for path, method, operation in _operations(schema)
        for status in operation["responses"]
        if status.startswith("4") and not _examples(operation, status)
    ]

    assert not missing, missing


def test_every_endpoint_that_needs_credentials_documents_the_401(schema):
    missing = [
        f"{method.upper()} {path}"
        for path, method, operation in _operations(schema)
        if operation.get("security") and "401" not in operation["responses"]
    ]

    assert not missing, missing
