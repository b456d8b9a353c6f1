"""Liveness/readiness probes and Prometheus metrics."""

import pytest
from django.db import connection


def test_live_answers_without_touching_the_database(client):
    # No django_db mark: any query here would raise.
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_ready_names_postgresql_and_the_pgvector_version(client):
    response = client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    checks = body["checks"]
    assert checks["database"]["engine"] == "postgresql"
    assert checks["database"]["version"].split(".")[0].isdigit()
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        assert checks["pgvector"]["version"] == cursor.fetchone()[0]
    assert checks["migrations"] == {**checks["migrations"], "status": "ok", "pending": 0}
    assert "redis" not in checks  # REDIS_URL is not configured in tests


@pytest.mark.django_db
def test_ready_reports_503_naming_the_failing_dependency(client):
    with connection.cursor() as cursor:
        cursor.execute("DROP EXTENSION vector")  # rolled back with the test transaction
    response = client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["checks"]["pgvector"]["status"] == "error"
    assert "vector extension is not installed" in body["checks"]["pgvector"]["error"]
    assert body["checks"]["database"]["status"] == "ok"


@pytest.mark.django_db
def test_ready_checks_redis_when_configured(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["status"] == "error"


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_probes_refuse_other_methods_with_the_error_shape(client, method):
    response = getattr(client, method)("/health/live")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.django_db
def test_metrics_exposes_prometheus_text_with_request_counters(client):
    client.get("/health/live")
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
