"""The runner for ``builtin`` tools: a Lumina capability, acting for whoever asked."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import structlog

from lumina.kernel.errors import ApplicationError
from lumina.security.api import Actor
from lumina.tools import builtins
from lumina.tools.runners import current_actor
from lumina.tools.types import ExecutionStatus, RunOutcome, ToolSpec

logger = structlog.get_logger(__name__)


def run_builtin(spec: ToolSpec, arguments: Mapping[str, Any]) -> RunOutcome:
    started = time.perf_counter()

    def ms() -> float:
        return round((time.perf_counter() - started) * 1000, 3)

    builtin = builtins.get(spec.builtin_name)
    if builtin is None:
        return RunOutcome(
            ExecutionStatus.FAILED,
            error=f"The builtin '{spec.builtin_name}' is not available on this server.",
            error_code="unavailable",
        )
    actor = current_actor.get() or Actor.system("tools")
    try:
        result = builtin.function(arguments, actor)
    except builtins.BuiltinError as exc:
        return RunOutcome(
            ExecutionStatus.FAILED, error=str(exc), error_code="builtin", duration_ms=ms()
        )
    except ApplicationError as exc:  # the other context refused, e.g. no permission
        return RunOutcome(
            ExecutionStatus.FAILED, error=exc.message, error_code=exc.code, duration_ms=ms()
        )
    except Exception:
        logger.exception("builtin failed", builtin=spec.builtin_name)
        return RunOutcome(
            ExecutionStatus.FAILED,
            error="The builtin failed.",
            error_code="crashed",
            duration_ms=ms(),
        )
    return RunOutcome(ExecutionStatus.SUCCEEDED, result=result, duration_ms=ms())
