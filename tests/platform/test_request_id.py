"""Every response carries X-Request-ID, and every log line written during it too."""

import json
import logging

import pytest


def _json_lines(caplog) -> list[dict]:
    """Render captured records with the project's real formatter, as they reach stdout."""
    formatter = logging.getLogger().handlers[0].formatter
    return [json.loads(formatter.format(record)) for record in caplog.records]


@pytest.mark.django_db
def test_incoming_request_id_is_honoured_and_logged(client, caplog):
    caplog.set_level(logging.INFO)
    response = client.get("/health/live", HTTP_X_REQUEST_ID="abc-123.def")
    assert response["X-Request-ID"] == "abc-123.def"
    access = [line for line in _json_lines(caplog) if line.get("logger") == "lumina.access"]
    assert access
    assert access[-1]["request_id"] == "abc-123.def"
    assert access[-1]["status"] == 200
    assert access[-1]["path"] == "/health/live"


def test_missing_or_malformed_request_id_is_replaced(client):
    generated = client.get("/health/live")["X-Request-ID"]
    assert len(generated) == 32
    hostile = client.get("/health/live", HTTP_X_REQUEST_ID="x" * 500 + "\n")["X-Request-ID"]
    assert hostile != "x" * 500
    assert len(hostile) == 32


def test_stdlib_log_lines_inside_a_request_carry_its_id(client, caplog):
    caplog.set_level(logging.WARNING)
    client.get("/no/such/route", HTTP_X_REQUEST_ID="req-404")
    lines = [line for line in _json_lines(caplog) if line.get("logger") == "django.request"]
    assert lines
    assert lines[-1]["request_id"] == "req-404"
    assert lines[-1]["level"] == "warning"


@pytest.mark.django_db
def test_api_answers_are_never_cached(admin_client):
    assert admin_client.get("/api/v1/events/outbox")["Cache-Control"] == "no-store"
    assert admin_client.get("/api/v1/nope")["Cache-Control"] == "no-store"


def test_probes_keep_their_own_caching(client):
    assert "Cache-Control" not in client.get("/health/live")
