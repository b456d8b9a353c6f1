"""Plain types of MCP tool sources: how to reach a server, what it offers, what a call
came to, and the DTOs that cross ``lumina.tools.api``. No SDK import here: these are
loaded at start-up, the SDK only when a server is talked to."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from lumina.kernel.errors import ApplicationError

Transport = Literal["stdio", "http"]


@dataclasses.dataclass(frozen=True)
class McpEndpoint:
    """How to reach one MCP server. ``env`` and ``headers`` may hold secrets: never log them."""

    transport: Transport
    command: Sequence[str] = ()
    url: str = ""
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    cwd: str | None = None

    def __repr__(self) -> str:  # never the environment or the headers
        return f"McpEndpoint({self.transport}, {self.describe()!r})"

    def describe(self) -> str:
        """For messages: the program or the URL, without arguments, variables or headers."""
        if self.transport == "stdio":
            return os.path.basename(self.command[0]) if self.command else "(no command)"
        return self.url


@dataclasses.dataclass(frozen=True)
class RemoteTool:
    name: str
    description: str
    input_schema: Mapping[str, Any]
    output_schema: Mapping[str, Any] | None


CallStatus = Literal[
    "succeeded", "tool_error", "timeout", "crashed", "refused", "too_large", "failed"
]


@dataclasses.dataclass(frozen=True)
class CallOutcome:
    """What one ``tools/call`` came to.

    ``succeeded``: the server answered and did not flag an error; ``result`` is its
    structured content when it sent one, else its text. ``tool_error``: the server answered
    with ``isError``. The rest: no usable answer (deadline passed, server went away,
    outbound policy refused, answer too large, protocol failure).
    """

    status: CallStatus
    result: Any = None
    content: tuple[Mapping[str, Any], ...] = ()
    error: str = ""
    stderr: str = ""
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


class McpUnavailable(ApplicationError):
    """The MCP server could not be reached, or did not answer in time."""

    code = "mcp_unavailable"
    status = 502


@dataclasses.dataclass(frozen=True)
class McpServerDTO:
    """A registered MCP server. Its environment and headers are secrets: never shown."""

    id: uuid.UUID
    name: str
    transport: str
    command: tuple[str, ...]
    url: str
    enabled: bool
    timeout_seconds: float
    has_env: bool
    has_headers: bool
    tool_names: tuple[str, ...]
    last_synced_at: dt.datetime | None
    last_error: str
    owner_id: uuid.UUID | None
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class McpImportReport:
    """What importing a server's tools did, tool by tool (Lumina's names)."""

    server: McpServerDTO
    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    disabled: tuple[str, ...] = ()  # offered before, not any more
    skipped: tuple[tuple[str, str], ...] = ()  # (the server's name, why)
