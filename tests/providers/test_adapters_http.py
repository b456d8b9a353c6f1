"""The adapters' shared HTTP client: one session per event loop, and error-body parsing."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time

import pytest
from multidict import CIMultiDict

from lumina.providers.adapters import http
from lumina.providers.types import ProviderKind
from tests.providers.adapters_support import API_KEY, endpoint


def test_each_event_loop_gets_one_session_until_closed():
    async def sessions():
        first, second = http.session(), http.session()
        await http.close_sessions()
        return first, second, first.closed, http.session()

    first, second, closed, after = asyncio.run(sessions())
    other_loop, _, _, _ = asyncio.run(sessions())

    assert first is second
    assert closed
    assert after is not first
    assert other_loop is not first


def test_session_has_no_cookie_jar_and_no_global_connection_cap():
    async def inspect():
        current = http.session()
        details = (type(current.cookie_jar).__name__, current.connector.limit)
        await http.close_sessions()
        return details

    assert asyncio.run(inspect()) == ("DummyCookieJar", 0)


@pytest.mark.parametrize(
    ("body", "message", "code"),
    [
        (
            b'{"error": {"message": "Rate limit", "type": "requests", "code": "rate_limited"}}',
            "Rate limit",
            "rate_limited",
        ),
        (
            b'{"error": {"message": "Bad", "type": "invalid_request_error", "code": null}}',
            "Bad",
            "invalid_request_error",
        ),
        (
            b'{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}',
            "Overloaded",
            "overloaded_error",
        ),
        (b'{"error": "model \\"x\\" not found"}', 'model "x" not found', None),
        (b'{"detail": "Not Found"}', "Not Found", None),
        (b"<html>502 Bad Gateway</html>", "<html>502 Bad Gateway</html>", None),
        (b"", "no error message", None),
    ],
)
def test_error_bodies_of_every_provider_are_understood(body, message, code):
    assert http.parse_error_body(body) == (message, code)


def test_retry_after_forms():
    assert http.parse_retry_after(CIMultiDict({"Retry-After": "3"})) == 3.0
    assert http.parse_retry_after(CIMultiDict({"retry-after": "0.5"})) == 0.5
    assert (
        http.parse_retry_after(CIMultiDict({"retry-after-ms": "250", "Retry-After": "9"})) == 0.25
    )
    future = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 <= http.parse_retry_after(CIMultiDict({"Retry-After": future})) <= 61
    past = email.utils.formatdate(time.time() - 60, usegmt=True)
    assert http.parse_retry_after(CIMultiDict({"Retry-After": past})) == 0.0
    assert http.parse_retry_after(CIMultiDict({"Retry-After": "soon"})) is None
    assert http.parse_retry_after(CIMultiDict()) is None


def test_error_messages_never_carry_the_api_key(caplog):
    caplog.set_level(logging.WARNING, logger="lumina.providers.adapters.http")
    target = endpoint(ProviderKind.OPENAI, "http://127.0.0.1:9/v1")
    body = b'{"error": {"message": "Incorrect API key provided: ' + API_KEY.encode() + b'"}}'

    error = http.error_from_answer(target, 401, CIMultiDict(), body)

    assert API_KEY not in error.message
    assert "Incorrect API key" not in error.message  # the provider's words go to the log only
    assert error.code == "upstream_auth_failed"
    assert not error.retryable
    # The operator's log keeps the provider's message, with the key scrubbed.
    assert "Incorrect API key provided: ***" in caplog.text
    assert API_KEY not in caplog.text


def test_callers_see_no_part_of_an_upstream_error_body_nor_an_address(caplog):
    caplog.set_level(logging.WARNING, logger="lumina.providers.adapters.http")
    target = endpoint(ProviderKind.OPENAI, "http://10.1.2.3:8080/v1")
    leaked = "AccessKeyId=ASIA-internal-credential at 10.1.2.3:8080"
    answers = [
        b'{"error": {"message": "' + leaked.encode() + b'", "code": "bad\nvalue <x>"}}',
        leaked.encode(),
        b'{"detail": "' + leaked.encode() + b'"}',
    ]
    for body in answers:
        for status in (400, 401, 404, 418, 500, 503):
            error = http.error_from_answer(target, status, CIMultiDict(), body)
            assert "ASIA" not in error.message, error.message
            assert "10.1.2.3" not in error.message
            assert error.message.startswith("test-openai ")
            assert error.provider_code is None  # not an identifier: dropped
    assert "ASIA-internal-credential" in caplog.text  # the operator still sees it


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(408, True), (409, True), (429, True), (500, True), (529, True), (400, False), (404, False)],
)
def test_which_statuses_are_retryable(status, retryable):
    target = endpoint(ProviderKind.OPENAI, "http://127.0.0.1:9/v1")

    assert http.error_from_answer(target, status, CIMultiDict(), b"").retryable is retryable
