"""The runner for ``python`` tools: the source's ``main`` in the sandbox (ADR 0018)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lumina.tools.sandbox import run_python
from lumina.tools.types import RunOutcome, ToolSpec


def run_python_tool(spec: ToolSpec, arguments: Mapping[str, Any]) -> RunOutcome:
    ran = run_python(spec.source, dict(arguments), spec.limits)
    resource_use = dict(ran.resource_use)
    if ran.stdout_truncated:
        resource_use["stdout_truncated"] = True
    if ran.stderr_truncated:
        resource_use["stderr_truncated"] = True
    return RunOutcome(
        status=ran.status,
        result=ran.result,
        error=ran.error,
        error_code=ran.error_code,
        stdout=ran.stdout,
        stderr=ran.stderr,
        duration_ms=ran.duration_ms,
        resource_use=resource_use,
    )
