"""Events about tool runs. They carry ids and outcomes, never arguments or results:
those stay in the execution row, readable only by who may see it."""

from __future__ import annotations

import dataclasses
import uuid

from lumina.kernel.events import Command, IntegrationEvent

__all__ = ["RunToolExecution", "ToolExecuted", "ToolFailed"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ToolExecuted(IntegrationEvent):
    name = "tools.ToolExecuted"
    version = 1

    execution_id: uuid.UUID
    tool_id: uuid.UUID | None
    tool_name: str
    tool_version: int
    duration_ms: float
    actor_id: uuid.UUID | None = None
    run_id: uuid.UUID | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ToolFailed(IntegrationEvent):
    name = "tools.ToolFailed"
    version = 1

    execution_id: uuid.UUID
    tool_id: uuid.UUID | None
    tool_name: str
    tool_version: int
    status: str
    error_code: str
    duration_ms: float | None = None
    actor_id: uuid.UUID | None = None
    run_id: uuid.UUID | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunToolExecution(Command):
    """Run an accepted (``pending``) execution: the long runs answered with 202."""

    name = "tools.RunToolExecution"
    version = 1

    execution_id: uuid.UUID
