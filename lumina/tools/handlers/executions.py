"""Runs accepted with 202: the ``RunToolExecution`` command starts them where it is delivered."""

from __future__ import annotations

from lumina.kernel.bus import subscribe
from lumina.tools.events.executions import RunToolExecution
from lumina.tools.services.executions import execution_start_pending


@subscribe(RunToolExecution)
def run_pending_execution(event: RunToolExecution) -> None:
    execution_start_pending(event.execution_id)
