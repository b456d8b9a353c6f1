"""MCP servers as tool sources: the client side of the Model Context Protocol (ADR 0019).

The SDK costs about a second of CPU to import, so nothing here is imported until an MCP
tool runs or ``/mcp`` is first asked: ``register_runner`` installs a runner that loads the
real one on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _run_mcp(spec: Any, arguments: Mapping[str, Any]) -> Any:
    from lumina.tools.mcp.runner import run_mcp

    return run_mcp(spec, arguments)


def register_runner() -> None:
    from lumina.tools import runners
    from lumina.tools.types import ToolKind

    runners.register(ToolKind.MCP, _run_mcp)
