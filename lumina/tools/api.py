"""The tools context's public interface: the only module other contexts may import.

Plain functions and the frozen dataclasses of ``lumina.tools.types``; never models.
"""

from __future__ import annotations

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
]
