"""ASGI-level guards that must act before Django reads a request body."""

from __future__ import annotations

import json

from django.conf import settings

from lumina.kernel.errors import PayloadTooLargeError


def _too_large(error: PayloadTooLargeError) -> tuple[dict, dict]:
    body = json.dumps(
        {"error": {"code": error.code, "message": error.message, "fields": {}}}
    ).encode()
    start = {
        "type": "http.response.start",
        "status": error.status,
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
    counted as it arrives: the chunk that crosses the limit raises
    ``PayloadTooLargeError`` out of ``receive``. The ``/v1`` gateway answers that in its
    own error shape; anything else that lets it escape gets the 413 from here.
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
            for message in _too_large(_error(limit)):
                await send(message)
            return

        received = 0
        started = False

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _error(limit)
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except PayloadTooLargeError as error:
            if not started:
                for message in _too_large(error):
                    await send(message)


def _error(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"The request body exceeds {limit} bytes.")
