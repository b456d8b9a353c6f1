"""The access log never loads a user itself: an unmatched URL with a session is a 404."""

from __future__ import annotations

import logging

import pytest
import requests
from django.conf import settings
from django.test import Client

from tests.security.rbac_support import make_user

pytestmark = [pytest.mark.django_db(transaction=True)]


def _session_cookie(user) -> str:
    """A real session, as a login leaves it in the database."""
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def _access_lines(caplog, path: str) -> list[dict]:
    return [
        record.msg
        for record in caplog.records
        if record.name == "lumina.access"
        and isinstance(record.msg, dict)
        and record.msg.get("path") == path
    ]


def test_an_unmatched_url_with_a_session_cookie_is_a_404_not_a_500(asgi_server, caplog):
    caplog.set_level(logging.INFO)
    cookie = _session_cookie(make_user("session-404@example.com"))

    response = requests.get(
        f"{asgi_server.url}/no/such/page",
        cookies={settings.SESSION_COOKIE_NAME: cookie},
        timeout=30,
    )

    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"
    [line] = _access_lines(caplog, "/no/such/page")
    assert line["status"] == 404


def test_a_view_that_used_the_session_user_logs_its_id(asgi_server, caplog):
    """The access line still names the user when the request's handling resolved it."""
    caplog.set_level(logging.INFO)
    user = make_user("session-me@example.com")
    cookie = _session_cookie(user)

    response = requests.get(
        f"{asgi_server.url}/api/v1/auth/me",
        cookies={settings.SESSION_COOKIE_NAME: cookie},
        timeout=30,
    )

    assert response.status_code == 200, response.text
    [line] = _access_lines(caplog, "/api/v1/auth/me")
    assert line["user_id"] == str(user.pk)
