"""Secrets stay secret: the password and the token appear nowhere but the one create response."""

from __future__ import annotations

import logging

import pytest
from django.apps import apps
from django.db import connection
from rest_framework.test import APIClient

from tests.security.auth_support import ME, PASSWORD, TOKENS, browser, login, reset_caches

pytestmark = pytest.mark.django_db

WRONG_PASSWORD = "an-entirely-wrong-passphrase-77"


@pytest.fixture(autouse=True)
def _fresh_caches():
    reset_caches()
    yield
    reset_caches()


@pytest.fixture
def sql_logging():
    """Log every SQL statement with its parameters, as DEBUG deployments would."""
    connection.force_debug_cursor = True
    yield
    connection.force_debug_cursor = False


def stored_rows() -> str:
    """Every row of the kernel's and security's tables (outbox, audit log, tokens, users)."""
    dumps = []
    for label in ("kernel", "security", "sessions"):
        for model in apps.get_app_config(label).get_models():
            dumps.extend(str(row) for row in model.objects.values())
    return "\n".join(dumps)


def test_password_and_token_never_leak_into_logs_responses_or_events(
    caplog, sql_logging, django_user_model, django_capture_on_commit_callbacks
):
    django_user_model.objects.create_user("ada@example.com", PASSWORD)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    responses = []
    with django_capture_on_commit_callbacks(execute=True):
        session = browser()
        responses.append(
            login(APIClient(enforce_csrf_checks=True), "ada@example.com", WRONG_PASSWORD)
        )
        responses.append(login(session, "ada@example.com"))
        csrf = session.cookies["csrftoken"].value
        created = session.post(
            TOKENS, {"name": "ci", "scopes": ["memory.read"]}, format="json", HTTP_X_CSRFTOKEN=csrf
        )
        assert created.status_code == 201
        secret = created.json()["token"]
        token_client = APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}")
        responses.append(token_client.get(ME))
        responses.append(session.get(TOKENS))
        responses.append(session.get(f"{TOKENS}/{created.json()['id']}"))
        responses.append(session.delete(f"{TOKENS}/{created.json()['id']}", HTTP_X_CSRFTOKEN=csrf))
        responses.append(token_client.get(ME))  # now revoked: a 401
        responses.append(APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}x").get(ME))

    assert [r.status_code for r in responses] == [401, 200, 200, 200, 200, 200, 401, 401]
    assert any("SELECT" in record.getMessage() for record in caplog.records), "SQL was logged"
    logged = caplog.text + "\n".join(repr(record.__dict__) for record in caplog.records)
    shown = "\n".join(r.content.decode() + repr(dict(r.headers)) for r in responses)
    stored = stored_rows()
    assert "security.ApiTokenRevoked" in stored  # the events were recorded
    for secret_value in (PASSWORD, WRONG_PASSWORD, secret):
        assert secret_value not in logged
        assert secret_value not in shown
        assert secret_value not in stored
    assert secret in created.content.decode()
