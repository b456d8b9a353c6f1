"""The OpenAI-compatible ``/v1`` API, as a plain ASGI application in front of Django.

``/v1`` is the hot path, so it does not go through Django's request handler: that
handler runs signal receivers and ``response.close()`` in a worker thread per request
and its middleware stack costs more than the whole gateway may (ADR 0005). What the
middleware gives the rest of the site is done here directly: request ids, host
validation, ``Cache-Control: no-store``, an access log line and metrics.
"""

from __future__ import annotations

import asyncio
import base64
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from lumina.kernel.concurrency import run_sync
from lumina.kernel.errors import ApplicationError
from lumina.kernel.observability import access_log, request_begin
from lumina.providers import metrics
from lumina.providers.services.completion import (
    ProviderFailedError,
    StreamInterrupted,
    chat_complete,
    chat_prepare,
    chat_stream,
    embeddings_create,
    embeddings_prepare,
    models_list,
)
from lumina.providers.services.requests import InvalidRequestError
from lumina.security.api import Actor, InvalidTokenError, authenticate_token

logger = structlog.get_logger("lumina.gateway")

ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]
_JSON = b"application/json"
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),  # nginx must not buffer the stream
]

# OpenAI's error ``type`` for each HTTP status.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


class GatewayError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or []

    @classmethod
    def from_application(cls, error: ApplicationError) -> GatewayError:
        param = getattr(error, "param", None) or next(iter(error.fields), None)
        headers = []
        retry_after = getattr(error, "retry_after", None)
        if retry_after:
            headers.append((b"retry-after", str(max(1, round(retry_after))).encode()))
        return cls(error.status, error.message, code=error.code, param=param, headers=headers)

    def body(self) -> dict[str, Any]:
        kind = _ERROR_TYPES.get(
            self.status, "api_error" if self.status >= 500 else "invalid_request_error"
        )
        return {
            "error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        }


class Gateway:
    """Serves ``/v1/…`` itself and hands every other request to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.routes: dict[tuple[str, str], Callable] = {
            ("POST", "/v1/chat/completions"): self.chat_completions,
            ("POST", "/v1/embeddings"): self.embeddings,
            ("GET", "/v1/models"): self.models,
        }

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        exchange = Exchange(scope, receive, send)
        try:
            handler = self.routes.get((scope["method"], scope["path"].rstrip("/")))
            if handler is None:
                known = any(path == scope["path"].rstrip("/") for _, path in self.routes)
                raise GatewayError(
                    405 if known else 404,
                    f"{'Method not allowed' if known else 'Unknown endpoint'}: "
                    f"{scope['method']} {scope['path']}",
                    code="method_not_allowed" if known else "unknown_url",
                )
            exchange.check_host()
            await handler(exchange)
        except GatewayError as error:
            await exchange.error(error)
        except ApplicationError as error:
            await exchange.error(GatewayError.from_application(error))
        except Exception:
            logger.exception("gateway request failed", path=scope["path"])
            await exchange.error(
                GatewayError(500, "Lumina failed to serve the request.", code="internal_error")
            )
        finally:
            exchange.log()

    # -- endpoints --------------------------------------------------------------------

    async def models(self, exchange: Exchange) -> None:
        actor = await exchange.authenticate()
        data = await models_list(actor=actor)
        await exchange.json(200, {"object": "list", "data": data})

    async def chat_completions(self, exchange: Exchange) -> None:
        actor = await exchange.authenticate()
        body = await exchange.json_body()
        session = exchange.headers.get(b"x-lumina-memory-session")
        call = await chat_prepare(
            actor=actor,
            body=body,
            request_id=exchange.request_id,
            memory_session=session.decode("latin-1") if session is not None else None,
        )
        exchange.call = call
        if not body.get("stream"):
            result = await chat_complete(call)
            await exchange.json(200, result, overhead=call.overhead_seconds)
            return
        await exchange.stream(chat_stream(call), call)

    async def embeddings(self, exchange: Exchange) -> None:
        actor = await exchange.authenticate()
        body = await exchange.json_body()
        call = await embeddings_prepare(actor=actor, body=body, request_id=exchange.request_id)
        exchange.call = call
        result = await embeddings_create(call)
        if body.get("encoding_format") == "base64":
            result = {**result, "data": [_as_base64(item) for item in result["data"]]}
        await exchange.json(200, result, overhead=call.overhead_seconds)


def sse_data(payload: Any) -> bytes:
    """One server-sent event carrying ``payload`` as JSON, as OpenAI frames its chunks."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _as_base64(item: dict[str, Any]) -> dict[str, Any]:
    vector = item["embedding"]
    if isinstance(vector, str):
        return item
    packed = struct.pack(f"<{len(vector)}f", *vector)
    return {**item, "embedding": base64.b64encode(packed).decode()}


class Exchange:
    """One request and its response: reading, authenticating, answering, logging."""

    __slots__ = (
        "call",
        "headers",
        "receive",
        "request_id",
        "scope",
        "send",
        "started",
        "status",
        "user_id",
    )

    def __init__(self, scope: dict, receive: Callable, send: Callable) -> None:
        self.started = time.perf_counter()
        self.scope = scope
        self.receive = receive
        self.send = send
        self.headers = dict(scope["headers"])
        given = self.headers.get(b"x-request-id")
        # uvicorn runs each request in a task of its own: a fresh logging context.
        self.request_id = request_begin(
            given.decode("latin-1") if given else None, fresh_context=True
        )
        self.status = 0
        self.call = None
        self.user_id = None

    def check_host(self) -> None:
        host = self.headers.get(b"host", b"").decode("latin-1")
        domain, _port = split_domain_port(host)
        if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
            raise GatewayError(400, f"Invalid Host header: {host!r}.", code="bad_host")

    async def authenticate(self) -> Actor:
        header = self.headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise GatewayError(
                401,
                "Missing API key: send 'Authorization: Bearer <Lumina API token>'.",
                code="invalid_api_key",
            )
        client = self.scope.get("client")
        try:
            actor = await run_sync(
                authenticate_token, raw.strip(), ip_address=client[0] if client else None
            )
        except InvalidTokenError as error:
            raise GatewayError(401, error.message, code="invalid_api_key") from None
        self.user_id = actor.user_id
        return actor

    async def json_body(self) -> Any:
        chunks = []
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise GatewayError(400, "The client closed the request.", code="disconnected")
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise InvalidRequestError(
                f"The request body is not valid JSON: {error}", param="body", code="invalid_json"
            ) from None

    def _headers(self, content_type: bytes, overhead: float | None) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"content-type", content_type),
            (b"cache-control", b"no-store"),
            (b"x-request-id", self.request_id.encode()),
        ]
        if overhead is not None:
            headers.append((b"x-lumina-overhead-ms", f"{overhead * 1000:.2f}".encode()))
            operation = self.call.operation if self.call else "other"
            metrics.labelled(metrics.OVERHEAD, operation).observe(overhead)
        return headers

    async def json(
        self,
        status: int,
        payload: Any,
        *,
        overhead: float | None = None,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        body = orjson.dumps(payload)
        if overhead is None:
            overhead = time.perf_counter() - self.started
            if self.call is not None:
                overhead = self.call.overhead_seconds
        headers = self._headers(_JSON, overhead)
        headers.append((b"content-length", str(len(body)).encode()))
        if extra:
            headers += extra
        self.status = status
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})

    async def error(self, error: GatewayError) -> None:
        if self.status:
            return  # a response has started; stream errors are sent in-band
        await self.json(error.status, error.body(), extra=error.headers)

    async def stream(self, chunks, call) -> None:
        """Send chunks as SSE as they arrive; a broken stream ends with an error event."""
        disconnected = asyncio.Event()
        watcher = asyncio.create_task(self._watch_disconnect(disconnected))
        try:
            try:
                first = await anext(chunks)
            except StopAsyncIteration:
                first = None
            headers = self._headers(_SSE_HEADERS[0][1], call.overhead_seconds)
            headers += _SSE_HEADERS[1:]
            self.status = 200
            await self.send({"type": "http.response.start", "status": 200, "headers": headers})
            chunk = first
            while chunk is not None:
                if disconnected.is_set():
                    return
                await self.send(
                    {
                        "type": "http.response.body",
                        "body": sse_data(chunk),
                        "more_body": True,
                    }
                )
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    chunk = None
            await self.send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
        except StreamInterrupted as broken:
            # Never a clean [DONE] after a failure: the client must see the stream failed.
            event = GatewayError(
                502, f"The provider stream broke: {broken.error.message}", code=broken.error.code
            ).body()
            await self.send({"type": "http.response.body", "body": sse_data(event)})
        except (ApplicationError, ProviderFailedError):
            raise  # before the first byte: answered as a normal error response
        finally:
            watcher.cancel()
            await chunks.aclose()

    async def _watch_disconnect(self, disconnected: asyncio.Event) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                disconnected.set()
                return

    def log(self) -> None:
        access_log(
            method=self.scope["method"],
            path=self.scope["path"],
            status=self.status,
            started=self.started,
            user_id=self.user_id,
        )
