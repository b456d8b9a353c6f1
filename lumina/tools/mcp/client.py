"""Talking to one MCP server through the official SDK (``mcp`` 2.x): list its tools, call one.

Each operation opens a connection of its own (a stdio server process, or a streamable HTTP
session), does its work under one deadline and closes it: a server that crashes, hangs or
floods takes only that call down with it, and never Lumina. What can go wrong is reported
as a ``CallOutcome`` (for a call) or an ``McpUnavailable`` (for a listing), never as an
exception escaping from the SDK. ADR 0019.

* stdio: the command runs with only the SDK's minimal environment (``HOME``, ``PATH``, …)
  plus the server's own variables; Lumina's settings and secrets are not inherited. Its
  stderr goes to a temporary file, of which the tail is kept for diagnosis.
* streamable HTTP: through ``guarded_http_client`` (outbound policy at connect time, a
  byte cap on what is read, no redirects to another origin, no proxies).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

import anyio
import httpx2
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from lumina.kernel.outbound import refusal_in
from lumina.tools.mcp.outbound import ResponseTooLarge, guarded_http_client
from lumina.tools.mcp.types import (
    CallOutcome,
    McpEndpoint,
    McpUnavailable,
    RemoteTool,
)

STDERR_TAIL = 4000
CLIENT_NAME = "lumina"


class Connection:
    """An entered SDK ``Client`` for one endpoint, with the stdio server's stderr file."""

    def __init__(
        self, endpoint: McpEndpoint, *, timeout_seconds: float | None, max_bytes: int | None
    ):
        self.endpoint = endpoint
        self.timeout_seconds = timeout_seconds
        self.max_bytes = max_bytes
        self.stderr_file: Any = None

    async def open(self, stack: AsyncExitStack) -> Client:
        if self.endpoint.transport == "stdio":
            if not self.endpoint.command:
                raise ValueError("a stdio MCP server needs a command")
            # Outlives the connection, so its tail can be read after the server is gone.
            self.stderr_file = tempfile.TemporaryFile(  # noqa: SIM115 (closed by stderr_tail)
                "w+", encoding="utf-8", errors="replace"
            )
            params = StdioServerParameters(
                command=self.endpoint.command[0],
                args=list(self.endpoint.command[1:]),
                env=dict(self.endpoint.env),
                cwd=self.endpoint.cwd,
            )
            transport = stdio_client(params, errlog=self.stderr_file)
        else:
            http = await stack.enter_async_context(
                guarded_http_client(
                    headers=dict(self.endpoint.headers),
                    timeout_seconds=self.timeout_seconds or 30.0,
                    max_bytes=self.max_bytes,
                )
            )
            transport = streamable_http_client(self.endpoint.url, http_client=http)
        client = Client(
            transport,
            read_timeout_seconds=self.timeout_seconds,
            cache=None,
            client_info=_client_info(),
        )
        return await stack.enter_async_context(client)

    def stderr_tail(self, *, close: bool = True) -> str:
        """The end of what a stdio server wrote to stderr; closes the file unless told not to."""
        if self.stderr_file is None:
            return ""
        try:
            self.stderr_file.seek(0, os.SEEK_END)
            size = self.stderr_file.tell()
            self.stderr_file.seek(max(0, size - STDERR_TAIL))
            return self.stderr_file.read()
        except (OSError, ValueError):
            return ""
        finally:
            if close:
                self.stderr_file.close()


def _client_info() -> Any:
    from mcp import Implementation

    return Implementation(name=CLIENT_NAME, version="1")


async def list_tools(endpoint: McpEndpoint, *, timeout_seconds: float = 30.0) -> list[RemoteTool]:
    """Every tool the server offers (all pages), or ``McpUnavailable`` saying why not."""
    connection = Connection(endpoint, timeout_seconds=timeout_seconds, max_bytes=16 * 1024 * 1024)
    tools: list[RemoteTool] = []
    try:
        with anyio.fail_after(timeout_seconds):
            async with AsyncExitStack() as stack:
                client = await connection.open(stack)
                cursor: str | None = None
                for _ in range(100):
                    page = await client.list_tools(cursor=cursor)
                    tools.extend(
                        RemoteTool(
                            name=tool.name,
                            description=tool.description or "",
                            input_schema=dict(tool.input_schema or {"type": "object"}),
                            output_schema=dict(tool.output_schema) if tool.output_schema else None,
                        )
                        for tool in page.tools
                    )
                    cursor = page.next_cursor
                    if not cursor:
                        break
    except BaseException as exc:  # the SDK raises exception groups from its task groups
        status, message = classify(exc, endpoint, timeout_seconds)
        if status == "cancelled":
            raise
        raise McpUnavailable(
            f"Could not list the tools of {endpoint.describe()}: {message}"
        ) from None
    finally:
        connection.stderr_tail()
    return tools


async def call_tool(
    endpoint: McpEndpoint,
    name: str,
    arguments: Mapping[str, Any],
    *,
    timeout_seconds: float,
    max_bytes: int = 1_000_000,
) -> CallOutcome:
    """Call ``name`` with ``arguments`` under one deadline for connecting and calling."""
    started = time.perf_counter()
    connection = Connection(endpoint, timeout_seconds=timeout_seconds, max_bytes=max_bytes * 4)
    outcome: CallOutcome | None = None
    try:
        with anyio.fail_after(timeout_seconds):
            async with AsyncExitStack() as stack:
                client = await connection.open(stack)
                answer = await client.call_tool(name, dict(arguments))
                outcome = outcome_of(answer, max_bytes)
    except BaseException as exc:
        status, message = classify(exc, endpoint, timeout_seconds)
        if status == "cancelled":
            raise
        if outcome is None or status != "failed":
            outcome = CallOutcome(status=status, error=message)  # type: ignore[arg-type]
    return dataclasses.replace(
        outcome,
        stderr=connection.stderr_tail(),
        duration_ms=(time.perf_counter() - started) * 1000,
    )


def outcome_of(answer: Any, max_bytes: int) -> CallOutcome:
    content = tuple(
        block.model_dump(mode="json", by_alias=True, exclude_none=True) for block in answer.content
    )
    if answer.structured_content is not None:
        result: Any = answer.structured_content
    else:
        result = "\n".join(
            block.get("text", "") for block in content if block.get("type") == "text"
        )
    size = len(json.dumps(result, default=str))
    if size > max_bytes:
        return CallOutcome(
            status="too_large",
            error=f"The MCP server's answer is {size} bytes; this tool may return {max_bytes}.",
        )
    if answer.is_error:
        text = "\n".join(block.get("text", "") for block in content if block.get("type") == "text")
        return CallOutcome(
            status="tool_error",
            content=content,
            error=text[:2000] or "The MCP server reported an error.",
        )
    return CallOutcome(status="succeeded", result=result, content=content)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        found: list[BaseException] = []
        for inner in exc.exceptions:
            found.extend(_leaves(inner))
        return found
    return [exc]


def classify(exc: BaseException, endpoint: McpEndpoint, timeout_seconds: float) -> tuple[str, str]:
    """A status and a message safe to show, for whatever the SDK or transport raised."""
    leaves = _leaves(exc)
    for leaf in leaves:
        refused = refusal_in(leaf)
        if refused is not None:
            return "refused", str(refused)
    for leaf in leaves:
        if isinstance(leaf, ResponseTooLarge) or isinstance(leaf.__context__, ResponseTooLarge):
            return "too_large", str(leaf)
    for leaf in leaves:
        if isinstance(leaf, TimeoutError):
            return "timeout", f"{endpoint.describe()} did not answer within {timeout_seconds:g} s."
    for leaf in leaves:
        if isinstance(leaf, MCPError):
            if "closed" in str(leaf).lower():
                return "crashed", f"{endpoint.describe()} closed the connection mid-call."
            return "failed", f"{endpoint.describe()} answered with an error: {leaf}"
    for leaf in leaves:
        if isinstance(leaf, httpx2.TransportError):
            return "failed", f"{endpoint.describe()} could not be reached."
        if isinstance(leaf, FileNotFoundError | PermissionError):
            return "failed", f"{endpoint.describe()} could not be started."
        if isinstance(leaf, OSError):
            return "failed", f"{endpoint.describe()} could not be reached."
    for leaf in leaves:
        if isinstance(leaf, anyio.get_cancelled_exc_class() | KeyboardInterrupt | SystemExit):
            return "cancelled", ""
    names = ", ".join(sorted({type(leaf).__name__ for leaf in leaves}))
    return "failed", f"The call to {endpoint.describe()} failed ({names})."
