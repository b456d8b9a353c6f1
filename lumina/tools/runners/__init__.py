"""Runners: one per tool kind, each turning a ``ToolSpec`` and arguments into a ``RunOutcome``.

A runner never raises for a tool's own failure: it reports it in the outcome, so the
execution is recorded whatever happened. The MCP runner registers itself from its own
module (``register``), so this table does not import the MCP client.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping
from typing import Any

from lumina.security.api import Actor
from lumina.tools.errors import RunnerUnavailableError
from lumina.tools.types import RunOutcome, ToolKind, ToolSpec

Runner = Callable[[ToolSpec, Mapping[str, Any]], RunOutcome]

_runners: dict[ToolKind, Runner] = {}

# Who a run acts for, for runners that call another context as that person (builtins).
# Set by the execution service around each run.
current_actor: contextvars.ContextVar[Actor | None] = contextvars.ContextVar(
    "tools_current_actor", default=None
)


def register(kind: ToolKind, runner: Runner) -> None:
    _runners[ToolKind(kind)] = runner


def runner_for(kind: ToolKind) -> Runner:
    runner = _runners.get(ToolKind(kind))
    if runner is None:
        raise RunnerUnavailableError(
            f"Tools of kind '{kind}' cannot run on this server.", fields={"kind": [str(kind)]}
        )
    return runner
