"""The tools context's public interface: the only module other contexts may import.

Plain functions and the frozen dataclasses of ``lumina.tools.types``; never models.
"""

from __future__ import annotations

import uuid
from typing import Any

from lumina.security.api import Actor, require
from lumina.tools.selectors.executions import execution_dto
from lumina.tools.selectors.executions import execution_get as _execution_get
from lumina.tools.selectors.registry import tool_dtos, tool_queryset
from lumina.tools.selectors.reports import ExecutionCountRow, execution_counts
from lumina.tools.services.executions import execute
from lumina.tools.services.loop import (
    LoopEvent,
    LoopResult,
    LoopStep,
    ToolCallTrace,
    run_with_tools,
    run_with_tools_async,
    run_with_tools_events,
)
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
    "ExecutionCountRow",
    "ExecutionDTO",
    "ExecutionStatus",
    "Limits",
    "LoopEvent",
    "LoopResult",
    "LoopStep",
    "RunOutcome",
    "ToolCallTrace",
    "ToolDTO",
    "ToolKind",
    "ToolSpec",
    "execution_counts",
    "execution_get",
    "openai_tools",
    "run_with_tools",
    "run_with_tools_async",
    "run_with_tools_events",
    "sandbox_status",
    "tool_execute",
    "tool_list",
]


def tool_list(
    *, actor: Actor, enabled: bool | None = True, kind: str | None = None
) -> list[ToolDTO]:
    """The registered tools (``tools.read``), by name."""
    require(actor, "tools.read")
    return tool_dtos(list(tool_queryset(kind=kind, enabled=enabled)))


def openai_tools(*, actor: Actor) -> list[dict[str, Any]]:
    """The enabled tools in OpenAI's ``tools`` shape (``tools.read``)."""
    return [tool.openai() for tool in tool_list(actor=actor)]


def tool_execute(
    tool: str | uuid.UUID,
    arguments: dict[str, Any],
    *,
    actor: Actor,
    version: int | None = None,
    model_call_id: str = "",
    asynchronous: bool | None = False,
) -> ExecutionDTO:
    """Run a tool as ``actor`` (``tools.execute`` on it): the finished execution, or the
    pending one when ``asynchronous``. Refusals raise ``ApplicationError`` subclasses."""
    return execute(
        actor=actor,
        tool=tool,
        arguments=arguments,
        version=version,
        model_call_id=model_call_id,
        asynchronous=asynchronous,
    )


def execution_get(execution_id: uuid.UUID, *, actor: Actor) -> ExecutionDTO | None:
    """An execution the actor may see (their own, or any with tools.executions.read_all)."""
    found = _execution_get(actor=actor, execution_id=execution_id)
    return execution_dto(found) if found is not None else None


def sandbox_status() -> dict[str, Any]:
    """The python-tool sandbox's mode and whether it runs, for /health/ready (ADR 0018)."""
    from lumina.tools.sandbox import sandbox_status as status

    return status()
