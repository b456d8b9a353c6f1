"""Oversized request bodies get a 413 in the error shape before Django buffers them."""

import asyncio
import json

import pytest

from config.asgi import application


def _call(headers, chunks, *, limit_settings):
    sent = []
    incoming = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]

    async def receive():
        if incoming:
            return incoming.pop(0)
        await asyncio.Event().wait()  # a client that stays connected until answered

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/health/live", "raw_path": b"/health/live",
        "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    asyncio.run(application(scope, receive, send))
    return sent


@pytest.fixture
def small_limit(settings):
    settings.LUMINA_MAX_REQUEST_BYTES = 1024
    return settings


def test_declared_oversized_body_is_refused_without_reading_it(small_limit):
    sent = _call([(b"content-length", b"5000"), (b"host", b"localhost")], [b""],
                 limit_settings=small_limit)  # fmt: skip
    assert sent[0]["status"] == 413
    body = json.loads(sent[1]["body"])
    assert body["error"]["code"] == "request_too_large"
    assert "1024 bytes" in body["error"]["message"]


def test_chunked_oversized_body_is_cut_off_as_it_arrives(small_limit):
    sent = _call([(b"host", b"localhost")], [b"x" * 600, b"x" * 600, b"x" * 600],
                 limit_settings=small_limit)  # fmt: skip
    statuses = [m["status"] for m in sent if m["type"] == "http.response.start"]
    assert statuses == [413]


def test_bodies_within_the_limit_reach_the_application(small_limit):
    sent = _call([(b"content-length", b"10"), (b"host", b"localhost")], [b"x" * 10],
                 limit_settings=small_limit)  # fmt: skip
    statuses = [m["status"] for m in sent if m["type"] == "http.response.start"]
    assert statuses == [405]  # /health/live refuses POST: the request got through
