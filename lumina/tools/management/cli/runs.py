"""``tools run|results``: run a tool, and read executions, from the command line.

The command line acts as the system (whoever runs ``manage.py`` controls the
deployment); runs are recorded and audited like any other.
"""

from __future__ import annotations

import json
import uuid

from django.core.management.base import BaseCommand, CommandError

from lumina.kernel.errors import ApplicationError
from lumina.tools.management.cli.registry import CLI_ACTOR, failed, json_option
from lumina.tools.selectors.executions import execution_dto, execution_get, execution_list
from lumina.tools.services.executions import execute
from lumina.tools.types import ExecutionDTO, ExecutionStatus


def register(commands) -> None:
    run = commands.add_parser("run", help="Run a tool and print its execution as JSON.")
    run.add_argument("tool", help="The tool's name or id.")
    run.add_argument(
        "--args", dest="arguments", default="{}", metavar="JSON|@FILE", help="The arguments."
    )
    run.add_argument(
        "--tool-version", type=int, metavar="N", help="Defaults to the current version."
    )
    run.set_defaults(handler=run_tool)

    results = commands.add_parser("results", help="Recent executions, or one in full.")
    results.add_argument("execution", nargs="?", help="An execution id: print it as JSON.")
    results.add_argument("--tool")
    results.add_argument("--status", choices=[status.value for status in ExecutionStatus])
    results.add_argument("--limit", type=int, default=20)
    results.set_defaults(handler=show_results)


def _as_json(execution: ExecutionDTO) -> str:
    return json.dumps(
        {
            "id": str(execution.id),
            "tool": execution.tool_name,
            "version": execution.tool_version,
            "status": execution.status.value,
            "result": execution.result,
            "error_code": execution.error_code,
            "error": execution.error,
            "stdout": execution.stdout,
            "stderr": execution.stderr,
            "duration_ms": execution.duration_ms,
            "resource_use": dict(execution.resource_use),
        },
        indent=2,
        default=str,
    )


def run_tool(
    command: BaseCommand, *, tool: str, arguments: str, tool_version: int | None, **_
) -> None:
    values = json_option("--args", arguments)
    try:
        done = execute(actor=CLI_ACTOR, tool=tool, arguments=values, version=tool_version)
    except ApplicationError as error:
        raise failed(error) from None
    command.stdout.write(_as_json(done))
    if done.status is not ExecutionStatus.SUCCEEDED:
        raise CommandError(f"{done.tool_name} ended {done.status.value}: {done.error}")


def show_results(
    command: BaseCommand,
    *,
    execution: str | None,
    tool: str | None,
    status: str | None,
    limit: int,
    **_,
) -> None:
    if execution:
        try:
            execution_id = uuid.UUID(execution)
        except ValueError:
            raise CommandError(f"{execution!r} is not an execution id") from None
        found = execution_get(actor=CLI_ACTOR, execution_id=execution_id)
        if found is None:
            raise CommandError(f"No execution {execution_id}")
        command.stdout.write(_as_json(execution_dto(found)))
        return
    rows = execution_list(actor=CLI_ACTOR, tool=tool, status=status)[: max(1, limit)]
    command.stdout.write(f"{'WHEN':<20} {'TOOL':<28} {'STATUS':<15} {'MS':>8} ID")
    for row in rows:
        duration = f"{row.duration_ms:.1f}" if row.duration_ms is not None else "-"
        command.stdout.write(
            f"{row.created_at:%Y-%m-%d %H:%M:%S} {row.tool_name:<28} {row.status:<15} "
            f"{duration:>8} {row.id}"
        )
