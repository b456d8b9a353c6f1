"""Refused tokens are counted and audited in aggregate: per address and per prefix, per minute.

The attack: presenting unknown, expired or revoked tokens left no trace but access-log
lines, and auditing each one would let anyone flood the serialised audit chain. Now a
minute's refusals become one audit entry per client address and one per token prefix,
with the count, whether they came through REST, the /v1 gateway or a websocket.
"""

from __future__ import annotations

import datetime as dt
import time

import httpx
import pytest
from asgiref.testing import ApplicationCommunicator
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.utils import timezone
from rest_framework.test import APIClient

from lumina.kernel.models import OutboxEvent
from lumina.security.consumers import UNAUTHORISED_CLOSE_CODE, websocket_auth
from lumina.security.models import ApiToken
from lumina.security.models.audit import AuditEntry
from lumina.security.services import token_refusals
from lumina.security.services.tokens import token_authenticate, token_create
from lumina.security.types import Actor
from tests.providers.gateway_support import asgi_server  # noqa: F401 (a fixture)

SYSTEM = Actor.system("tests")
ME = "/api/v1/auth/me"
ATTACKER = "203.0.113.66"
UNKNOWN = "lum_" + "u" * 43
ACTION = "security.ApiTokensRefused"


def refusals() -> dict[str, dict]:
    rows = OutboxEvent.objects.filter(name=ACTION).order_by("created_at")
    return {row.payload["target"]: row.payload for row in rows}


def flushed(django_capture_on_commit_callbacks) -> dict[str, dict]:
    """Publish what was counted (as the next minute would), delivering it to the audit log."""
    with django_capture_on_commit_callbacks(execute=True):
        token_refusals.flush_all()
    return refusals()


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("holder@example.com", None)


@pytest.mark.django_db
def test_rest_refusals_become_one_audit_entry_per_address_and_prefix(
    user, django_capture_on_commit_callbacks
):
    revoked = token_create(user_id=user.pk, actor=SYSTEM)
    ApiToken.objects.filter(pk=revoked.token.id).update(revoked_at=timezone.now())
    expired = token_create(user_id=user.pk, actor=SYSTEM)
    ApiToken.objects.filter(pk=expired.token.id).update(
        expires_at=timezone.now() - dt.timedelta(minutes=1)
    )
    client = APIClient(REMOTE_ADDR=ATTACKER)
    presented = [UNKNOWN] * 30 + [revoked.secret] * 5 + [expired.secret] * 2 + ["garbage"] * 3
    for raw in presented:
        response = client.get(ME, HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert response.status_code == 401
    assert not refusals()  # nothing is written per request

    found = flushed(django_capture_on_commit_callbacks)

    address = found[f"address:{ATTACKER}"]
    assert (address["count"], address["unknown"], address["revoked"]) == (40, 30, 5)
    assert (address["expired"], address["malformed"]) == (2, 3)
    assert found[f"prefix:{UNKNOWN[:12]}"]["count"] == 30
    assert found[f"prefix:{revoked.token.prefix}"]["revoked"] == 5
    assert found[f"prefix:{expired.token.prefix}"]["expired"] == 2
    assert found["prefix:garbage"]["malformed"] == 3
    assert len(found) == 5
    entries = AuditEntry.objects.filter(action=ACTION)
    assert entries.count() == 5  # for 40 refused requests
    assert str(entries.get(target=f"address:{ATTACKER}").ip_address) == ATTACKER
    assert not any(raw in str(row.details) for raw in (UNKNOWN, revoked.secret) for row in entries)


@pytest.mark.django_db(transaction=True)  # published only outside a transaction
def test_a_finished_minute_is_published_by_the_next_authentication(user):
    good = token_create(user_id=user.pk, actor=SYSTEM).secret
    last_minute = time.time() - token_refusals.WINDOW_SECONDS
    token_refusals.refusal_record(
        reason="unknown", raw=UNKNOWN, ip_address=ATTACKER, now=last_minute
    )
    assert not refusals()

    token_authenticate(raw=good, ip_address="198.51.100.1")  # an accepted one will do

    token_refusals.refusal_record(reason="unknown", raw=UNKNOWN, ip_address=ATTACKER)
    published = refusals()
    assert published[f"address:{ATTACKER}"]["count"] == 1  # the finished minute only
    start = dt.datetime.fromisoformat(published[f"address:{ATTACKER}"]["window_start"])
    assert start.timestamp() <= last_minute < start.timestamp() + token_refusals.WINDOW_SECONDS


@pytest.mark.django_db
def test_counting_keeps_to_a_bounded_number_of_keys(
    monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(token_refusals, "MAX_KEYS", 3)
    for n in range(10):
        token_refusals.refusal_record(
            reason="malformed", raw=f"lum_{n:08d}", ip_address=f"198.51.100.{n}"
        )
    found = flushed(django_capture_on_commit_callbacks)
    assert found["address:*"]["count"] == 7
    assert found["prefix:*"]["count"] == 7
    assert len(found) == 8


@pytest.mark.django_db(transaction=True)
def test_gateway_refusals_are_counted(asgi_server):  # noqa: F811
    with httpx.Client(base_url=asgi_server.url) as client:
        for _ in range(4):
            response = client.post(
                "/v1/chat/completions",
                json={"model": "lumina/auto", "messages": [{"role": "user", "content": "hi"}]},
                headers={"Authorization": f"Bearer {UNKNOWN}"},
            )
            assert response.status_code == 401
    token_refusals.flush_all()
    found = refusals()
    assert found["address:127.0.0.1"]["unknown"] == 4
    assert found[f"prefix:{UNKNOWN[:12]}"]["count"] == 4


class _Accept(AsyncJsonWebsocketConsumer):
    async def connect(self):
        await self.accept()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_websocket_handshake_refusals_are_counted():
    from channels.db import database_sync_to_async

    for _ in range(3):
        scope = {"type": "websocket", "path": "/ws/x", "query_string": b"", "subprotocols": [],
                 "client": ("192.0.2.44", 50000),
                 "headers": [(b"authorization", f"Bearer {UNKNOWN}".encode())]}  # fmt: skip
        communicator = ApplicationCommunicator(websocket_auth(_Accept.as_asgi()), scope)
        await communicator.send_input({"type": "websocket.connect"})
        answer = await communicator.receive_output(5)
        assert answer == {"type": "websocket.close", "code": UNAUTHORISED_CLOSE_CODE}
    await database_sync_to_async(token_refusals.flush_all)()
    found = await database_sync_to_async(refusals)()
    assert found["address:192.0.2.44"]["count"] == 3


@pytest.mark.django_db(transaction=True)
def test_a_quiet_web_process_publishes_a_finished_minute_on_its_own(monkeypatch):
    monkeypatch.setattr(token_refusals, "TIMER_SECONDS", 0.05)
    last_minute = time.time() - token_refusals.WINDOW_SECONDS
    token_refusals.refusal_record(
        reason="unknown", raw=UNKNOWN, ip_address=ATTACKER, now=last_minute
    )
    assert not refusals()

    token_refusals.refusals_timer_start()
    try:
        deadline = time.monotonic() + 10
        while not refusals() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        token_refusals.refusals_timer_stop()

    assert refusals()[f"address:{ATTACKER}"]["count"] == 1


@pytest.mark.django_db(transaction=True)
def test_stopping_the_web_process_publishes_the_current_minute_too():
    token_refusals.refusal_record(reason="malformed", raw="lum_short", ip_address=ATTACKER)
    token_refusals.refusals_timer_start()
    assert not refusals()

    token_refusals.refusals_timer_stop()

    assert refusals()[f"address:{ATTACKER}"]["malformed"] == 1


def test_the_web_process_starts_and_stops_the_timer():
    from lumina.kernel import lifecycle

    name = "lumina.security.services.token_refusals.refusals_timer_"
    assert name + "start" in lifecycle.hooks("startup", lifecycle.WEB)
    assert name + "stop" in lifecycle.hooks("shutdown", lifecycle.WEB)
    assert name + "start" not in lifecycle.hooks("startup", lifecycle.WORKER)
