"""Value types of the tools context: kinds, limits, and the DTOs that cross ``api.py``.

Plain frozen dataclasses, so the sandbox, the MCP client and other contexts share them
without touching a model.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
from collections.abc import Mapping
from typing import Any


class ToolKind(enum.StrEnum):
    PYTHON = "python"  # source run in the sandbox (lumina.tools.sandbox)
    HTTP = "http"  # a call to an allow-listed URL, through the outbound guard
    BUILTIN = "builtin"  # a Lumina capability, through another context's api.py
    MCP = "mcp"  # a tool of a registered MCP server


class ExecutionStatus(enum.StrEnum):
    PENDING = "pending"  # accepted (202), waiting for a worker
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the tool ran and failed (exception, bad exit, upstream error)
    TIMEOUT = "timeout"  # wall-clock or CPU limit reached
    LIMIT_EXCEEDED = "limit_exceeded"  # memory, output size, processes
    INVALID_RESULT = "invalid_result"  # the result breaks the tool's result schema
    REFUSED = "refused"  # the sandbox or the outbound guard refused to run it
    REJECTED = "rejected"  # never ran: unknown tool, arguments against the schema, no permission

    @property
    def finished(self) -> bool:
        return self not in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING)


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one run may use. The sandbox and the other runners enforce what applies to them."""

    timeout_seconds: float = 10.0
    memory_mb: int = 256
    output_bytes: int = 1_000_000  # result and each of stdout/stderr, after truncation
    network: bool = False
    cpu_seconds: float | None = None  # defaults to the timeout
    max_processes: int = 16
    max_open_files: int = 64
    max_file_bytes: int = 16 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """What a runner reports about one run, whatever the kind.

    ``result`` is the tool's JSON value when ``status`` is ``succeeded``; ``error`` a
    message safe to show the caller otherwise.
    """

    status: ExecutionStatus
    result: Any = None
    error: str = ""
    error_code: str = ""
    stdout: str = ""
    stderr: str = ""
    duration_ms: float = 0.0
    resource_use: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ToolSpec:
    """One version of a tool, as a runner needs it."""

    tool_id: uuid.UUID
    name: str
    version: int
    kind: ToolKind
    description: str
    input_schema: Mapping[str, Any]
    output_schema: Mapping[str, Any] | None
    limits: Limits
    source: str = ""  # python
    http_url: str = ""  # http
    http_method: str = "POST"
    builtin_name: str = ""  # builtin
    mcp_server_id: uuid.UUID | None = None  # mcp
    mcp_tool_name: str = ""


@dataclasses.dataclass(frozen=True)
class ToolDTO:
    id: uuid.UUID
    name: str
    kind: ToolKind
    description: str
    enabled: bool
    version: int
    input_schema: Mapping[str, Any]
    output_schema: Mapping[str, Any] | None
    limits: Limits
    owner_id: uuid.UUID | None
    created_at: dt.datetime
    updated_at: dt.datetime

    def openai(self) -> dict[str, Any]:
        """This tool in OpenAI's ``tools`` shape."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.input_schema),
            },
        }


@dataclasses.dataclass(frozen=True)
class ExecutionDTO:
    id: uuid.UUID
    tool_id: uuid.UUID | None
    tool_name: str
    tool_version: int
    status: ExecutionStatus
    arguments: Any
    result: Any
    error_code: str
    error: str
    stdout: str
    stderr: str
    duration_ms: float | None
    resource_use: Mapping[str, Any]
    actor_id: uuid.UUID | None
    model_call_id: str
    run_id: uuid.UUID | None
    created_at: dt.datetime
    finished_at: dt.datetime | None
