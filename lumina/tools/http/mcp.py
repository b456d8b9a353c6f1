"""``/mcp``: Lumina as an MCP server (streamable HTTP), one audited endpoint for every tool.

A plain ASGI application in front of Django, like the ``/v1`` gateway (ADR 0005): the MCP
SDK brings its own streamable-HTTP transport, which Django's handler cannot host. What
this wrapper adds before the SDK sees a request: the host check against
``ALLOWED_HOSTS``, and authentication with a Lumina API token (``Authorization: Bearer``),
on every request, so a revoked token stops working at once.

``tools/list`` answers with the enabled tools the token may execute (``tools.execute`` on
each, scopes, roles, grants and policies: ``authorize``), whatever their kind: python,
http, builtin, and those imported from other MCP servers. ``tools/call`` goes through
``tools.services.executions.execute``, the same path as ``POST /tools/execute``: checked,
authorised, run, recorded as an execution and published, refusals included.

The server is stateless with JSON responses: any web process answers any request, with
no session to pin a client to one. The SDK is imported, and its session manager started,
on the first request to ``/mcp`` (it costs about a second of CPU); the context's shutdown
hook stops it. ADR 0019.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import structlog
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from lumina.kernel.concurrency import run_sync
from lumina.kernel.errors import ApplicationError, NotFoundError, PermissionDeniedError
from lumina.kernel.observability import request_begin
from lumina.security.api import InvalidTokenError, authenticate_token

logger = structlog.get_logger("lumina.mcp")

PATH = "/mcp"
ACTOR_KEY = "lumina.actor"
SERVER_NAME = "lumina"


def _json_response(status: int, code: str, message: str, extra: list | None = None):
    body = json.dumps({"error": {"code": code, "message": message, "fields": {}}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *(extra or []),
    ]
    return (
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    )


def _actor_of(ctx: Any):
    request = getattr(ctx, "request", None)
    actor = request.scope.get(ACTOR_KEY) if request is not None else None
    if actor is None:  # only reachable if a request bypassed McpEndpoint
        from mcp import MCPError
        from mcp_types.jsonrpc import INVALID_REQUEST

        raise MCPError(INVALID_REQUEST, "Not authenticated.")
    return actor


async def _list_tools(ctx: Any, params: Any) -> Any:
    from mcp_types import ListToolsResult, Tool

    from lumina.tools.services.mcp import mcp_gateway_tools

    actor = _actor_of(ctx)
    tools = await sync_to_async(mcp_gateway_tools, thread_sensitive=False)(actor=actor)
    return ListToolsResult(
        tools=[
            Tool(
                name=tool.name,
                description=tool.description or None,
                input_schema=dict(tool.input_schema),
                output_schema=_object_schema(tool.output_schema),
            )
            for tool in tools
        ]
    )


def _object_schema(schema: Any) -> dict | None:
    """MCP's outputSchema must describe an object; other result schemas are not announced."""
    if isinstance(schema, dict) and schema.get("type") == "object":
        return dict(schema)
    return None


async def _call_tool(ctx: Any, params: Any) -> Any:
    from mcp import MCPError
    from mcp_types import CallToolResult, TextContent
    from mcp_types.jsonrpc import INVALID_PARAMS

    from lumina.tools.services.mcp import mcp_gateway_call

    actor = _actor_of(ctx)
    try:
        execution, output_schema = await sync_to_async(mcp_gateway_call, thread_sensitive=False)(
            actor=actor, name=params.name, arguments=params.arguments or {}
        )
    except (NotFoundError, PermissionDeniedError) as error:
        # Finding the tool failed: a protocol error, as the MCP specification asks.
        raise MCPError(INVALID_PARAMS, error.message) from None
    except ApplicationError as error:
        # Bad arguments and the like: a tool error the model can read and correct.
        detail = {"code": error.code, "message": error.message, "fields": error.fields}
        return CallToolResult(
            content=[TextContent(type="text", text=json.dumps(detail))], is_error=True
        )
    meta = {"lumina/execution_id": str(execution.id), "lumina/status": str(execution.status)}
    if execution.status != "succeeded":
        text = execution.error or f"The tool run ended as {execution.status}."
        return CallToolResult(
            content=[TextContent(type="text", text=text)], is_error=True, _meta=meta
        )
    result = execution.result
    text = result if isinstance(result, str) else json.dumps(result)
    structured = result if _object_schema(output_schema) and isinstance(result, dict) else None
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=structured,
        _meta=meta,
    )


class _Service:
    """The SDK's server and session manager, started on first use, stopped at shutdown."""

    def __init__(self) -> None:
        self.manager: Any = None
        self._task: asyncio.Task | None = None
        self._stop: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def ready(self) -> Any:
        loop = asyncio.get_running_loop()
        if self.manager is not None and self._loop is loop:
            return self.manager
        if self._loop is not loop:
            # A new event loop (another server in this process): what ran on the old
            # one is gone with it.
            self.manager, self._task, self._stop = None, None, None
            self._lock, self._loop = asyncio.Lock(), loop
        async with self._lock:
            if self.manager is None:
                await self._start()
        return self.manager

    async def _start(self) -> None:
        from mcp.server import Server
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
        from mcp.server.transport_security import TransportSecuritySettings

        server = Server(
            SERVER_NAME, version="1", on_list_tools=_list_tools, on_call_tool=_call_tool
        )
        manager = StreamableHTTPSessionManager(
            app=server,
            json_response=True,
            stateless=True,
            # The host is checked against ALLOWED_HOSTS before the SDK sees the request;
            # a browser cannot send the bearer token cross-origin without a preflight.
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            max_request_body_size=settings.LUMINA_MAX_REQUEST_BYTES,
        )
        started = asyncio.Event()
        self._stop = asyncio.Event()
        stop = self._stop

        async def hold() -> None:
            async with manager.run():
                started.set()
                await stop.wait()

        self._task = asyncio.create_task(hold(), name="lumina-mcp-server")
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({self._task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if not started.is_set():
            waiter.cancel()
            self._task.result()  # raises what stopped it
        self.manager = manager

    async def stop(self) -> None:
        if self._task is None or self._stop is None:
            return
        self._stop.set()
        await asyncio.wait({self._task}, timeout=5)
        self.manager = None
        self._task = None
        self._stop = None


# Stopped by lumina.tools.mcp.mcp_stop, the context's shutdown hook.
service = _Service()


class McpEndpoint:
    """Serves ``/mcp`` itself and hands every other request to ``app``."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") != PATH:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id")
        request_begin(given.decode("latin-1") if given else None, fresh_context=True)
        host = headers.get(b"host", b"").decode("latin-1")
        domain, _port = split_domain_port(host)
        if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
            for message in _json_response(400, "bad_host", "Invalid Host header."):
                await send(message)
            return
        actor = await self._authenticate(scope, headers)
        if actor is None:
            for message in _json_response(
                401,
                "not_authenticated",
                "Send 'Authorization: Bearer <Lumina API token>'.",
                [(b"www-authenticate", b'Bearer realm="lumina"')],
            ):
                await send(message)
            return
        scope = {**scope, ACTOR_KEY: actor}
        manager = await service.ready()
        await manager.handle_request(scope, receive, send)

    async def _authenticate(self, scope: dict, headers: dict):
        scheme, _, raw = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            return None
        client = scope.get("client")
        try:
            return await run_sync(
                authenticate_token, raw.strip(), ip_address=client[0] if client else None
            )
        except InvalidTokenError:
            return None
