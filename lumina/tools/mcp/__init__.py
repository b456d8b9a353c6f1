"""MCP servers as tool sources: the client side of the Model Context Protocol (ADR 0019).

The SDK costs about a second of CPU to import, so nothing here is imported until an MCP
tool runs or ``/mcp`` is first asked: ``register_runner`` installs a runner that loads the
real one on first use, and a shutdown hook that stops whatever was started.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from typing import Any


def _run_mcp(spec: Any, arguments: Mapping[str, Any]) -> Any:
    from lumina.tools.mcp.runner import run_mcp

    return run_mcp(spec, arguments)


async def mcp_stop() -> None:
    """Stop ``/mcp``'s session manager and the warm sessions, where they were started."""
    endpoint = sys.modules.get("lumina.tools.http.mcp")
    if endpoint is not None:
        await endpoint.service.stop()
    pool = sys.modules.get("lumina.tools.mcp.pool")
    if pool is not None:  # closing waits for server processes: not on the event loop
        await asyncio.to_thread(pool.stop)


def register_runner() -> None:
    from lumina.kernel import lifecycle
    from lumina.tools import runners
    from lumina.tools.types import ToolKind

    runners.register(ToolKind.MCP, _run_mcp)
    lifecycle.on_shutdown(mcp_stop, where=(lifecycle.WEB, lifecycle.WORKER))
