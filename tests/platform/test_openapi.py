"""The OpenAPI document covers every endpoint, validates, and has no generator warnings."""

import pytest
import yaml
from django.core.management import call_command


@pytest.mark.django_db
def test_schema_is_valid_without_warnings(tmp_path):
    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = yaml.safe_load(target.read_text())
    paths = set(schema["paths"])
    for expected in (
        "/api/v1/auth/login",
        "/api/v1/auth/tokens",
        "/api/v1/auth/mfa/totp",
        "/api/v1/rbac/roles",
        "/api/v1/policies/evaluate",
        "/api/v1/encryption/encrypt",
        "/api/v1/audit/entries",
        "/api/v1/events/outbox",
        "/api/v1/providers",
        "/api/v1/providers/{provider_id}/models",
        "/api/v1/providers/capabilities",
        "/api/v1/providers/select",
        "/api/v1/providers/completion",
        "/api/v1/providers/stream",
        "/api/v1/providers/costs",
        "/api/v1/providers/budgets",
    ):
        assert expected in paths, sorted(paths)


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    from drf_spectacular.generators import SchemaGenerator

    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


def _operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def test_every_operation_is_tagged_by_its_context(schema):
    tags = {(method, path): op["tags"] for method, path, op in _operations(schema)}
    assert tags[("POST", "/api/v1/auth/tokens")] == ["security"]
    assert tags[("GET", "/api/v1/providers/costs")] == ["providers"]
    assert tags[("GET", "/api/v1/events/outbox")] == ["platform"]
    assert tags[("POST", "/api/v1/tools/execute")] == ["tools"]
    assert tags[("POST", "/api/v1/memory/search")] == ["memory"]
    assert tags[("POST", "/api/v1/vectors/collections")] == ["memory"]
    assert tags[("POST", "/api/v1/documents/{document_id}/shares")] == ["ui"]
    assert tags[("GET", "/api/v1/visualizations/{visualization_id}/render")] == ["ui"]
    contexts = ["security", "providers", "memory", "tools", "ui", "platform"]
    assert {tag for value in tags.values() for tag in value} == set(contexts)
    assert [tag["name"] for tag in schema["tags"]] == contexts


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        # Input, authentication, permission, object, conflict, size, media type.
        ("PATCH", "/api/v1/rbac/roles/{role_id}", {400, 401, 403, 404, 409, 413, 415}),
        # A paginated list with filters: a page past the last is a 404.
        ("GET", "/api/v1/auth/tokens", {400, 401, 403, 404}),
        # Anonymous but throttled, CSRF-checked, no authentication classes.
        ("POST", "/api/v1/auth/login", {400, 403, 413, 415, 429}),
        # Declared by the view: budgets, unknown models, upstream failures.
        ("POST", "/api/v1/providers/completion", {400, 401, 402, 403, 404, 429, 502, 503, 504}),
    ],
)
def test_error_responses_are_derived_with_the_one_error_shape(schema, method, path, expected):
    operation = schema["paths"][path][method.lower()]
    errors = {int(code) for code in operation["responses"] if int(code) >= 400}
    assert expected <= errors, sorted(errors)
    for code in errors:
        content = operation["responses"][str(code)]["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/Error"}
    error = schema["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["required"] == ["code", "message", "fields"]


def test_no_operation_documents_only_success(schema):
    bare = [(m, p) for m, p, op in _operations(schema) if all(c < "400" for c in op["responses"])]
    assert bare == [("GET", "/api/v1/auth/csrf")]  # anonymous, no input: it cannot fail


def test_page_parameters_state_their_bounds(schema):
    parameters = {p["name"]: p for p in schema["paths"]["/api/v1/rbac/roles"]["get"]["parameters"]}
    assert parameters["page"]["schema"]["minimum"] == 1
    assert parameters["page_size"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 500}


def test_the_description_leads_to_the_gateway(schema):
    description = schema["info"]["description"]
    assert "/api/schema/gateway/" in description
    for endpoint in ("/v1/chat/completions", "/v1/embeddings", "/v1/models"):
        assert endpoint in description
    assert "X-Lumina-Overhead-Ms" in description


@pytest.mark.django_db
def test_the_gateway_document_is_valid_openapi_describing_v1(client):
    from drf_spectacular.validation import validate_schema

    response = client.get("/api/schema/gateway/")
    assert response.status_code == 200
    document = response.json()
    validate_schema(document)
    assert set(document["paths"]) == {"/v1/chat/completions", "/v1/embeddings", "/v1/models"}
    chat = document["paths"]["/v1/chat/completions"]["post"]
    assert set(chat["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert "X-Lumina-Overhead-Ms" in chat["responses"]["200"]["headers"]
    error = document["components"]["schemas"]["Error"]["properties"]["error"]
    assert error["required"] == ["message", "type", "param", "code"]  # OpenAI's shape
    assert client.post("/api/schema/gateway/").status_code == 405


@pytest.mark.django_db
def test_the_docs_page_offers_both_documents(client):
    page = client.get("/api/docs/").content.decode()
    assert "/api/schema/gateway/" in page
    assert "/api/schema/" in page
