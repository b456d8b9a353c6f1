"""The runner for tools of kind ``mcp``: one ``tools/call`` on the tool's server.

Registered in the runner table (``lumina.tools.runners``) through
``lumina.tools.mcp.register_runner``, called from the app's ``ready()``. Like every runner
it never raises for the tool's own failure: a disabled or missing server, a crash, a
timeout or a refused address is a ``RunOutcome``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from asgiref.sync import async_to_sync

from lumina.tools.mcp import pool
from lumina.tools.mcp.client import call_tool
from lumina.tools.mcp.types import CallOutcome
from lumina.tools.models import McpServer
from lumina.tools.selectors.mcp import mcp_endpoint
from lumina.tools.types import ExecutionStatus, RunOutcome, ToolSpec

# The error codes an execution records for each way a call can end (none on success).
_CODES = {
    "tool_error": "mcp_tool_error",
    "crashed": "mcp_server_crashed",
    "failed": "mcp_failed",
    "timeout": "wall_clock",
    "too_large": "output_size",
    "refused": "outbound_refused",
}
_STATUS = {
    "succeeded": ExecutionStatus.SUCCEEDED,
    "tool_error": ExecutionStatus.FAILED,
    "crashed": ExecutionStatus.FAILED,
    "failed": ExecutionStatus.FAILED,
    "timeout": ExecutionStatus.TIMEOUT,
    "too_large": ExecutionStatus.LIMIT_EXCEEDED,
    "refused": ExecutionStatus.REFUSED,
}


def run_mcp(spec: ToolSpec, arguments: Mapping[str, Any]) -> RunOutcome:
    server = McpServer.objects.filter(id=spec.mcp_server_id).first()
    if server is None:
        return RunOutcome(
            ExecutionStatus.FAILED,
            error="The tool's MCP server was removed.",
            error_code="mcp_server_missing",
        )
    if not server.enabled:
        return RunOutcome(
            ExecutionStatus.REFUSED,
            error=f"The MCP server {server.name} is disabled.",
            error_code="mcp_server_disabled",
        )
    endpoint = mcp_endpoint(server)
    outcome: CallOutcome
    if server.transport == McpServer.Transport.STDIO:
        # A warm session: starting the server for every call would cost it a second.
        outcome = pool.call(
            server_id=str(server.id),
            revision=server.updated_at.isoformat(),
            endpoint=endpoint,
            name=spec.mcp_tool_name,
            arguments=arguments,
            timeout_seconds=spec.limits.timeout_seconds,
            max_bytes=spec.limits.output_bytes,
        )
    else:
        outcome = async_to_sync(call_tool)(
            endpoint,
            spec.mcp_tool_name,
            arguments,
            timeout_seconds=spec.limits.timeout_seconds,
            max_bytes=spec.limits.output_bytes,
        )
    return RunOutcome(
        status=_STATUS[outcome.status],
        result=outcome.result if outcome.ok else None,
        error=outcome.error,
        error_code=_CODES.get(outcome.status, ""),
        stderr=outcome.stderr[: spec.limits.output_bytes],
        duration_ms=outcome.duration_ms,
        resource_use={"mcp_server": server.name, "mcp_outcome": outcome.status},
    )
