"""Helpers shared by the authentication and API token tests."""

from __future__ import annotations

import time

from django.core.cache import cache
from rest_framework.test import APIClient

from lumina.kernel.models import OutboxEvent
from lumina.security.services.tokens import token_cache_clear

PASSWORD = "a long passphrase 42"
LOGIN = "/api/v1/auth/login"
CSRF = "/api/v1/auth/csrf"
ME = "/api/v1/auth/me"
LOGOUT = "/api/v1/auth/logout"
TOKENS = "/api/v1/auth/tokens"


def reset_caches() -> None:
    """Counters, locks and cached token look-ups must not leak from one test to the next."""
    cache.clear()
    token_cache_clear()


def browser() -> APIClient:
    """A client that, like a browser, must present a CSRF token on unsafe requests."""
    return APIClient(enforce_csrf_checks=True)


def csrf_token(client: APIClient) -> str:
    response = client.get(CSRF)
    assert response.status_code == 200
    return response.json()["csrf_token"]


def login(client: APIClient, email: str, password: str = PASSWORD, **extra):
    token = csrf_token(client)
    return client.post(
        LOGIN,
        {"email": email, "password": password},
        format="json",
        HTTP_X_CSRFTOKEN=token,
        **extra,
    )


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    return body["error"]


def events(name: str) -> list[dict]:
    return [
        row.payload for row in OutboxEvent.objects.filter(name=name).order_by("created_at", "id")
    ]


def steady_window(window: int = 60, margin: float = 5.0) -> None:
    """Wait for the next fixed throttle window if this one ends within ``margin`` seconds,
    so that a test's attempts are all counted in the same window."""
    left = window - time.time() % window
    if left < margin:
        time.sleep(left + 0.05)
