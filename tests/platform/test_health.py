"""Liveness/readiness probes and Prometheus metrics."""

import pytest
from django.db import connection

from lumina.security.services.tokens import token_create
from lumina.security.types import Actor
from tests.security.rbac_support import give_role, make_user

METRICS_TOKEN = "s3cret-metrics-token"


def _token_of(user, scopes=None) -> str:
    options = {"scopes": scopes} if scopes is not None else {}
    return token_create(user_id=user.pk, actor=Actor.system("tests"), **options).secret


def _operator(role: str = "Admin", **options) -> dict:
    user = make_user()
    give_role(user, role)
    return {"HTTP_AUTHORIZATION": f"Bearer {_token_of(user, **options)}"}


def test_live_answers_without_touching_the_database(client):
    # No django_db mark: any query here would raise.
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def _server_version() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version')")
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_ready_names_postgresql_and_the_pgvector_version_to_an_operator(client):
    response = client.get("/health/ready", **_operator("Admin"))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    checks = body["checks"]
    assert checks["database"]["engine"] == "postgresql"
    assert checks["database"]["version"] == _server_version()
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        assert checks["pgvector"]["version"] == cursor.fetchone()[0]
    assert checks["migrations"] == {**checks["migrations"], "status": "ok", "pending": 0}
    assert "redis" not in checks  # REDIS_URL is not configured in tests


@pytest.mark.django_db
def test_ready_tells_anyone_only_the_status_of_each_check(client):
    version = _server_version()
    detailed = client.get("/health/ready", **_operator("Owner")).content.decode()
    assert version in detailed  # the detail is there to be hidden …

    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {
            name: {"status": "ok"} for name in ("database", "pgvector", "migrations", "sandbox")
        },
    }
    assert version not in response.content.decode()  # … and anonymous callers do not see it


@pytest.mark.django_db
@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param(lambda: _operator("Developer"), id="developer-role"),
        pytest.param(lambda: _operator("Viewer"), id="viewer-role"),
        pytest.param(lambda: _operator("Admin", scopes=["providers.*"]), id="admin-narrow-token"),
        pytest.param(
            lambda: {"HTTP_AUTHORIZATION": f"Bearer {_token_of(make_user())}"}, id="no-role"
        ),
    ],
)
def test_ready_hides_details_from_tokens_without_the_permission(client, credentials):
    response = client.get("/health/ready", **credentials())
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == {"status": "ok"}


@pytest.mark.django_db
def test_ready_shows_details_to_the_metrics_token(client, settings):
    settings.LUMINA_METRICS_TOKEN = METRICS_TOKEN
    response = client.get("/health/ready", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert response.json()["checks"]["database"]["version"] == _server_version()


@pytest.mark.django_db
@pytest.mark.parametrize("given", ["lum_" + "x" * 43, "nope", "s3cret-metrics-tokeN"])
def test_ready_refuses_a_bad_token_with_the_error_shape(client, settings, given):
    settings.LUMINA_METRICS_TOKEN = METRICS_TOKEN
    response = client.get("/health/ready", HTTP_AUTHORIZATION=f"Bearer {given}")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="lumina"'
    assert set(response.json()["error"]) == {"code", "message", "fields"}
    assert "checks" not in response.json()


@pytest.mark.django_db
def test_ready_reports_503_naming_the_failing_dependency(client):
    with connection.cursor() as cursor:
        # Rolled back with the test transaction (CASCADE: memory's vector columns go too).
        cursor.execute("DROP EXTENSION vector CASCADE")
    response = client.get("/health/ready", **_operator("Admin"))
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["checks"]["pgvector"]["status"] == "error"
    assert "vector extension is not installed" in body["checks"]["pgvector"]["error"]
    assert body["checks"]["database"]["status"] == "ok"

    anonymous = client.get("/health/ready")
    assert anonymous.status_code == 503
    assert anonymous.json()["checks"]["pgvector"] == {"status": "error"}
    assert "vector extension" not in anonymous.content.decode()


@pytest.mark.django_db
def test_ready_checks_redis_when_configured(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] == {"status": "error"}


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_probes_refuse_other_methods_with_the_error_shape(client, method):
    response = getattr(client, method)("/health/live")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.django_db
def test_metrics_exposes_prometheus_text_with_request_counters(client):
    # Probes are answered ahead of the metrics middleware; any other route is counted.
    client.get("/no-such-route")
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert "# TYPE django_http_requests_total_by_method_total counter" in text
    assert 'django_http_requests_total_by_method_total{method="GET"}' in text


@pytest.mark.django_db
def test_probes_answer_whatever_the_host_header(client, settings):
    settings.ALLOWED_HOSTS = ["lumina.example.com"]
    assert client.get("/health/live", HTTP_HOST="10.1.2.3:8000").status_code == 200
    assert client.get("/health/ready", HTTP_HOST="10.1.2.3:8000").status_code == 200
    assert client.get("/metrics", HTTP_HOST="10.1.2.3:8000").status_code == 200
    # Everything else still validates the host.
    assert client.get("/api/v1/events/outbox", HTTP_HOST="10.1.2.3:8000").status_code == 400


def test_metrics_token_is_required_when_configured(client, settings):
    settings.LUMINA_METRICS_TOKEN = "s3cret-metrics-token"
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "not_authenticated"
    assert "s3cret" not in refused.content.decode()
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401
    allowed = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics-token")
    assert allowed.status_code == 200
    assert b"python_gc_objects_collected_total" in allowed.content
