"""Synchronous Django under ASGI: each request's middleware and view run in one switch to
its thread (ADR 0039)."""

from __future__ import annotations

import threading

import pytest
import requests

from lumina.platform import asgi
from tests.providers.gateway_support import lumina_token
from tests.security.rbac_support import give_role, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def switches(monkeypatch):
    """Calls handed to request threads, with the thread each ran on."""
    seen: list[tuple[str, int]] = []
    submit = asgi._Lease.submit

    def counted(self, fn, /, *args, **kwargs):
        def run(*a, **k):
            seen.append((getattr(fn, "__qualname__", repr(fn)), threading.get_ident()))
            return fn(*a, **k)

        return submit(self, run, *args, **kwargs)

    monkeypatch.setattr(asgi._Lease, "submit", counted)
    return seen


def test_a_rest_request_runs_its_middleware_and_view_in_one_switch(asgi_server, switches):
    user = make_user("threads@example.com")
    give_role(user, "Developer")
    answer = requests.get(
        f"{asgi_server.url}/api/v1/memory/records?limit=1",
        headers={"Authorization": f"Bearer {lumina_token(user)}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Request-ID"]
    # The request-started signal, the whole middleware chain with the view, and closing
    # the response: one thread, and no switch per middleware hook (there are 20 of them).
    assert len(switches) <= 3, switches
    assert len({thread for _, thread in switches}) == 1


def test_a_refused_login_through_the_session_middleware_answers_in_json(asgi_server):
    session = requests.Session()
    login = session.post(
        f"{asgi_server.url}/api/v1/auth/login",
        json={"email": "nobody@example.com", "password": "wrong"},
        timeout=30,
    )
    assert login.status_code in (400, 401, 403)
    assert login.headers["Content-Type"].startswith("application/json")


def test_every_asynchronous_probe_stays_on_the_event_loop():
    from lumina.platform.middleware import ASYNC_PROBES, ProbeMiddleware

    assert set(ProbeMiddleware(lambda request: None).async_routes) == ASYNC_PROBES
