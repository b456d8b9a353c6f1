"""The /ws/realtime/ protocol: authentication by handshake or first message, bad input
answered with an error naming the problem (or a close code), limits, tokens never logged."""

from __future__ import annotations

import json
import logging

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import Client as HttpClient

from lumina.ui.consumers import realtime
from tests.ui.realtime_support import (
    APP,
    Client,
    connect_anonymous,
    connect_with_token,
    make_user,
    publish,
    scope,
    subscribe,
    token_for,
    tool_run,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture
def developer_token():
    async def make():
        def create():
            user = make_user(role="Developer")
            return user, token_for(user)

        return await sync_to_async(create)()

    return make


async def _still_serves(client: Client) -> None:
    await client.send_json({"type": "ping"})
    assert await client.receive() == {"type": "pong"}


# --- Authentication ------------------------------------------------------------------


async def test_a_first_auth_message_authenticates_a_browser_app(developer_token):
    user, secret = await developer_token()
    client = await connect_anonymous()

    await client.send_json({"type": "auth", "token": secret})

    ready = await client.receive_type("ready")
    assert (ready["user_id"], ready["via"]) == (str(user.pk), "auth_message")
    assert (await subscribe(client, "tools"))["accepted"] == ["tools"]
    await publish(tool_run(user.pk))
    assert (await client.receive())["topic"] == "tools"
    await client.disconnect()


async def test_the_session_cookie_authenticates_the_handshake():
    def login():
        user = make_user(role="Developer")
        http = HttpClient()
        http.force_login(user)
        return user, http.cookies[settings.SESSION_COOKIE_NAME].value

    user, session_key = await sync_to_async(login)()
    cookie = f"{settings.SESSION_COOKIE_NAME}={session_key}".encode()
    client = Client(APP, scope([(b"cookie", cookie)]))
    assert await client.connect()

    ready = await client.receive_type("ready")
    assert (ready["user_id"], ready["via"]) == (str(user.pk), "session")
    await client.disconnect()


@pytest.mark.parametrize(
    "first",
    [
        {"type": "auth", "token": "lum_" + "x" * 43},  # well-formed, unknown
        {"type": "auth", "token": "not-a-token"},
        {"type": "auth", "token": 42},
        {"type": "subscribe", "topics": ["tools"]},  # anything before auth
    ],
    ids=["unknown token", "malformed token", "token not a string", "subscribe first"],
)
async def test_no_valid_auth_message_closes_with_4401(first):
    client = await connect_anonymous()
    await client.send_json(first)

    error = await client.receive_type("error")
    assert error["error"]["code"] in ("invalid_token", "not_authenticated")
    assert await client.closed() == realtime.CLOSE_UNAUTHENTICATED
    await client.disconnect()


async def test_no_auth_message_in_time_closes_with_4408(monkeypatch):
    monkeypatch.setattr(realtime, "AUTH_TIMEOUT_SECONDS", 0.05)
    client = await connect_anonymous()

    assert (await client.receive_type("error"))["error"]["code"] == "auth_timeout"
    assert await client.closed() == realtime.CLOSE_AUTH_TIMEOUT
    await client.disconnect()


async def test_a_bad_bearer_token_refuses_the_handshake():
    client = Client(APP, scope([(b"authorization", b"Bearer lum_" + b"y" * 43)]))
    assert not await client.connect()
    assert client.closed_with == realtime.CLOSE_UNAUTHENTICATED


async def test_tokens_never_reach_the_logs_or_the_answers(developer_token, caplog):
    caplog.set_level(logging.DEBUG)
    user, secret = await developer_token()
    unknown = "lum_" + "z" * 43
    answers = []

    client = await connect_anonymous()
    await client.send_text(f"not json {secret}")
    answers.append(await client.receive())
    await client.send_json({"type": "auth", "token": secret})
    answers.append(await client.receive())
    await client.send_json({"type": "auth", "token": secret})  # again: refused, not echoed
    answers.append(await client.receive())
    await client.send_json({"type": secret})
    answers.append(await client.receive())
    await client.disconnect()
    refused = await connect_anonymous()
    await refused.send_json({"type": "auth", "token": unknown})
    answers.append(await refused.receive())
    await refused.closed()
    await refused.disconnect()

    # The log is there to be searched: the connection's close was logged, with its user.
    assert "realtime connection closed" in caplog.text
    assert str(user.pk) in caplog.text
    for token in (secret, unknown, secret[4:], unknown[4:]):
        assert token not in caplog.text
        assert token not in json.dumps(answers)
    assert [a.get("type") for a in answers] == ["error", "ready", "error", "error", "error"]


# --- Bad input -----------------------------------------------------------------------

BAD_INPUT = [
    ("not json", {"text": "{subscribe"}, "invalid_json", None),
    ("a binary frame", {"bytes": b"\x00\x01"}, "invalid_json", None),
    ("a JSON array", {"text": "[1, 2]"}, "invalid", "type"),
    ("no type", {"text": '{"topics": ["tools"]}'}, "invalid", "type"),
    ("an unknown type", {"text": '{"type": "publish"}'}, "unknown_type", "type"),
    ("subscribe without topics", {"text": '{"type": "subscribe"}'}, "invalid", "topics"),
    (
        "topics not a list",
        {"text": '{"type": "subscribe", "topics": "tools"}'},
        "invalid",
        "topics",
    ),
    ("topics not strings", {"text": '{"type": "subscribe", "topics": [1]}'}, "invalid", "topics"),
    ("empty topics", {"text": '{"type": "unsubscribe", "topics": []}'}, "invalid", "topics"),
]


@pytest.mark.parametrize(
    ("label", "frame", "code", "field"), BAD_INPUT, ids=[b[0] for b in BAD_INPUT]
)
async def test_bad_input_is_answered_with_an_error_naming_it(
    developer_token, label, frame, code, field
):
    _, secret = await developer_token()
    client = await connect_with_token(secret)

    await client.send_input({"type": "websocket.receive", **frame})

    error = (await client.receive_type("error"))["error"]
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert field in error["fields"]
    await _still_serves(client)
    await client.disconnect()


async def test_unknown_and_malformed_topics_are_refused_with_a_reason(developer_token):
    _, secret = await developer_token()
    client = await connect_with_token(secret)

    answer = await subscribe(client, "tools", "weather", "tools:abc", "t" * 300, "")

    assert answer["accepted"] == ["tools"]
    codes = [r["code"] for r in answer["refused"]]
    assert codes == ["unknown_topic", "invalid_topic", "invalid_topic", "invalid_topic"]
    assert "usage" in answer["refused"][0]["reason"]  # names the topics there are
    assert all(len(r["topic"]) <= 100 for r in answer["refused"])
    await client.send_json({"type": "unsubscribe", "topics": ["tools", "usage"]})
    assert (await client.receive_type("unsubscribed"))["removed"] == ["tools"]
    await _still_serves(client)
    await client.disconnect()


# --- Limits ------------------------------------------------------------------------


async def test_an_oversized_message_closes_with_1009(developer_token):
    _, secret = await developer_token()
    client = await connect_with_token(secret)

    await client.send_json({"type": "subscribe", "topics": ["x" * realtime.MAX_MESSAGE_BYTES]})

    assert (await client.receive_type("error"))["error"]["code"] == "message_too_big"
    assert await client.closed() == realtime.CLOSE_TOO_BIG
    await client.disconnect()
    await _still_serves(await connect_with_token(secret))


async def test_too_many_subscriptions_close_with_4409(developer_token):
    _, secret = await developer_token()
    client = await connect_with_token(secret)
    await subscribe(client, "tools")

    names = [f"t{n}" for n in range(realtime.MAX_SUBSCRIPTIONS)]
    await client.send_json({"type": "subscribe", "topics": names})

    assert (await client.receive_type("error"))["error"]["code"] == "too_many_subscriptions"
    assert await client.closed() == realtime.CLOSE_TOO_MANY_SUBSCRIPTIONS
    await client.disconnect()


async def test_too_many_messages_a_second_close_with_4429(developer_token, monkeypatch):
    # A rate of (almost) nothing: only the burst passes, however fast or slow the machine.
    monkeypatch.setattr(realtime, "MESSAGES_PER_SECOND", 1e-9)
    _, secret = await developer_token()
    client = await connect_with_token(secret)

    for _ in range(realtime.MESSAGE_BURST):
        await _still_serves(client)
    await client.send_json({"type": "ping"})

    assert (await client.receive_type("error"))["error"]["code"] == "rate_limited"
    assert await client.closed() == realtime.CLOSE_RATE_LIMITED
    await client.disconnect()
