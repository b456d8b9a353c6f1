"""ASGI-level guards that must act before Django reads a request body."""

from __future__ import annotations

import json

from django.conf import settings


def _too_large(limit: int) -> tuple[dict, dict]:
    body = json.dumps(
        {
            "error": {
                "code": "request_too_large",
                "message": f"The request body exceeds {limit} bytes.",
                "fields": {},
            }
        }
    ).encode()
    start = {
        "type": "http.response.start",
        "status": 413,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class BodyLimit:
    """Refuses bodies over ``LUMINA_MAX_REQUEST_BYTES`` with 413 before they are buffered.

    Django's ASGI handler reads a whole body (spooling to disk) before any middleware
    runs, so a declared Content-Length is checked up front and a chunked body is
    counted as it arrives.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = settings.LUMINA_MAX_REQUEST_BYTES
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            for message in _too_large(limit):
                await send(message)
            return

        received = 0
        exceeded = False
        started = False

        async def counting_receive():
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counting_receive, tracking_send)
        if exceeded and not started:
            for message in _too_large(limit):
                await send(message)
