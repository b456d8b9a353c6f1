"""The tools context's public interface: the only module other contexts may import.

Plain functions and the frozen dataclasses of ``lumina.tools.types``; never models.
"""

from __future__ import annotations

from typing import Any

from lumina.tools.types import (
    ExecutionDTO,
    ExecutionStatus,
    Limits,
    RunOutcome,
    ToolDTO,
    ToolKind,
    ToolSpec,
)

__all__ = [
    "ExecutionDTO",
    "ExecutionStatus",
    "Limits",
    "RunOutcome",
    "ToolDTO",
    "ToolKind",
    "ToolSpec",
    "sandbox_status",
]


def sandbox_status() -> dict[str, Any]:
    """The python-tool sandbox's mode and whether it runs, for /health/ready (ADR 0018)."""
    from lumina.tools.sandbox import sandbox_status as status

    return status()
