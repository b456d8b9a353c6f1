"""Execution use-cases: run a tool for someone, and record how it went.

Order: find the tool (unknown → 404), authorise ``tools.execute`` on it (roles, an object
grant on ``tools.tool``, then policies), validate the arguments against the version's
schema (400 naming the path), run it through its kind's runner, validate the result
against the result schema, cap what is kept, store the execution and publish
``ToolExecuted`` or ``ToolFailed`` with it. A run that never starts (unknown tool, no
permission, bad arguments) is recorded too, as ``rejected``, and then refused.

Short runs answer synchronously. A tool whose timeout exceeds
``LUMINA_TOOLS_SYNC_SECONDS``, or a caller asking for ``asynchronous``, gets the
``pending`` execution at once (202); the ``RunToolExecution`` command runs it where the
event bus delivers: a worker thread of this process with the in-process transport, a
Celery worker otherwise.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from lumina.kernel.bus import publish
from lumina.kernel.database import insert_rows
from lumina.kernel.errors import ApplicationError, PermissionDeniedError
from lumina.security.api import Actor, Resource, actor_of_user_id, require
from lumina.tools import runners
from lumina.tools.errors import ArgumentsInvalidError, ToolDisabledError, ToolNotFoundError
from lumina.tools.events.executions import RunToolExecution, ToolExecuted, ToolFailed
from lumina.tools.models import Execution, Tool, ToolVersion
from lumina.tools.schemas import problems
from lumina.tools.selectors.executions import execution_dto
from lumina.tools.selectors.registry import tool_spec, tool_with_version
from lumina.tools.types import ExecutionDTO, ExecutionStatus, Limits, RunOutcome, ToolSpec

logger = structlog.get_logger(__name__)

EXECUTE = "tools.execute"
RESOURCE = "tools.tool"
MAX_ARGUMENTS_BYTES = 1024 * 1024
_pool: ThreadPoolExecutor | None = None


def sync_limit_seconds() -> float:
    return float(settings.LUMINA_TOOLS_SYNC_SECONDS)


def resource_of(tool: Tool) -> Resource:
    return Resource(
        type=RESOURCE, id=str(tool.id), attributes={"name": tool.name, "kind": tool.kind}
    )


def _who(actor: Actor) -> dict[str, Any]:
    return {
        "actor_id": actor.user_id,
        "token_id": actor.token_id,
        "token_scopes": sorted(actor.scopes) if actor.scopes is not None else None,
        "actor_context": actor.context or "",
    }


def _reject(
    *,
    actor: Actor,
    tool: Tool | None,
    name: str,
    version: int,
    arguments: Any,
    error: ApplicationError,
    model_call_id: str,
    run_id: uuid.UUID | None,
) -> None:
    """Record a run that never started, with why (its own transaction: the caller raises)."""
    now = timezone.now()
    with transaction.atomic():
        execution = Execution.objects.create(
            tool=tool,
            tool_name=name[:64],
            tool_version=version,
            status=ExecutionStatus.REJECTED.value,
            arguments=arguments if _json_size(arguments) <= MAX_ARGUMENTS_BYTES else None,
            error_code=error.code,
            error=error.message[:2000],
            model_call_id=model_call_id[:200],
            run_id=run_id,
            started_at=now,
            finished_at=now,
            **_who(actor),
        )
        _publish_outcome(execution)


def _json_size(value: Any) -> int:
    try:
        return len(json.dumps(value))
    except (TypeError, ValueError):
        return MAX_ARGUMENTS_BYTES + 1


def _check_arguments(version: ToolVersion, arguments: Any) -> None:
    if not isinstance(arguments, Mapping):
        raise ArgumentsInvalidError({"arguments": ["The arguments are a JSON object."]})
    if _json_size(arguments) > MAX_ARGUMENTS_BYTES:
        raise ArgumentsInvalidError({"arguments": [f"At most {MAX_ARGUMENTS_BYTES} bytes."]})
    found = problems(
        version.input_schema, arguments, prefix="arguments", key=(version.id, "arguments")
    )
    if found:
        raise ArgumentsInvalidError(found)


def prepare(
    *,
    actor: Actor,
    tool: str | uuid.UUID,
    arguments: Any,
    version: int | None = None,
    model_call_id: str = "",
    run_id: uuid.UUID | None = None,
) -> tuple[Tool, ToolVersion]:
    """Find, authorise and check a run; record and raise a refusal."""
    reject = {
        "actor": actor,
        "arguments": arguments,
        "model_call_id": model_call_id,
        "run_id": run_id,
    }
    row, chosen = tool_with_version(tool, version)
    if row is None:
        # Who may run no tool at all learns nothing about which names exist.
        try:
            require(actor, EXECUTE)
        except PermissionDeniedError as exc:
            _reject(tool=None, name=str(tool), version=0, error=exc, **reject)
            raise
        error = ToolNotFoundError(str(tool))
        _reject(tool=None, name=str(tool), version=0, error=error, **reject)
        raise error
    try:
        require(actor, EXECUTE, resource_of(row))
    except PermissionDeniedError as exc:
        _reject(tool=row, name=row.name, version=row.version, error=exc, **reject)
        raise
    if chosen is None:
        error = ToolNotFoundError(f"{row.name} v{version}", field="version")
        _reject(tool=row, name=row.name, version=version or 0, error=error, **reject)
        raise error
    if not row.enabled:
        error = ToolDisabledError(row.name)
        _reject(tool=row, name=row.name, version=chosen.number, error=error, **reject)
        raise error
    try:
        _check_arguments(chosen, arguments)
    except ArgumentsInvalidError as exc:
        _reject(tool=row, name=row.name, version=chosen.number, error=exc, **reject)
        raise
    runners.runner_for(row.kind)  # 503 now, rather than a failed run, if nothing can run it
    return row, chosen


def execute(
    *,
    actor: Actor,
    tool: str | uuid.UUID,
    arguments: Any,
    version: int | None = None,
    model_call_id: str = "",
    run_id: uuid.UUID | None = None,
    asynchronous: bool | None = None,
) -> ExecutionDTO:
    """Run a tool for ``actor``: the finished execution, or the pending one (asynchronous).

    ``asynchronous=None`` decides by the tool's timeout (``LUMINA_TOOLS_SYNC_SECONDS``).
    """
    row, chosen = prepare(
        actor=actor, tool=tool, arguments=arguments, version=version,
        model_call_id=model_call_id, run_id=run_id,
    )  # fmt: skip
    if asynchronous is None:
        asynchronous = chosen.timeout_seconds > sync_limit_seconds()
    execution = Execution(
        tool=row,
        tool_name=row.name,
        tool_version=chosen.number,
        arguments=dict(arguments),
        model_call_id=model_call_id[:200],
        run_id=run_id,
        asynchronous=asynchronous,
        **_who(actor),
    )
    if asynchronous:
        with transaction.atomic():
            execution.status = ExecutionStatus.PENDING.value
            execution.save()
            publish(RunToolExecution(execution_id=execution.id))
        return execution_dto(execution)
    # A synchronous run is written once, when it ends, with its outcome event in the same
    # transaction: a run cut short by the process dying leaves no row (its caller got no
    # answer either), and a short run costs one commit instead of two.
    execution.status = ExecutionStatus.RUNNING.value
    execution.started_at = timezone.now()
    outcome = run_spec(tool_spec(row, chosen), execution.arguments, actor=actor)
    return execution_dto(finish(execution, outcome, version=chosen))


def run_spec(spec: ToolSpec, arguments: Mapping[str, Any], *, actor: Actor) -> RunOutcome:
    """Run through the kind's runner; a runner's own crash is a failed outcome, not a 500."""
    started = time.perf_counter()
    token = runners.current_actor.set(actor)
    try:
        return runners.runner_for(spec.kind)(spec, arguments)
    except ApplicationError as exc:
        return RunOutcome(ExecutionStatus.REFUSED, error=exc.message, error_code=exc.code)
    except Exception:
        logger.exception("tool runner failed", tool=spec.name, kind=str(spec.kind))
        return RunOutcome(
            ExecutionStatus.FAILED,
            error="The tool could not be run.",
            error_code="crashed",
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
    finally:
        runners.current_actor.reset(token)


def _cap(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    return text[:limit], True


def finish(execution: Execution, outcome: RunOutcome, *, version: ToolVersion | None) -> Execution:
    """Check the outcome against the result contract and limits, store it, publish it."""
    limit = version.output_bytes if version is not None else Limits.output_bytes
    output_schema = version.output_schema if version is not None else None
    status = ExecutionStatus(outcome.status)
    result = outcome.result if status is ExecutionStatus.SUCCEEDED else None
    error, error_code = outcome.error, outcome.error_code
    if status is ExecutionStatus.SUCCEEDED:
        size = _json_size(result)
        if size > limit:
            status, result = ExecutionStatus.LIMIT_EXCEEDED, None
            error, error_code = f"The result is larger than {limit} bytes.", "result_size"
        elif output_schema is not None and version is not None:
            found = problems(output_schema, result, prefix="result", key=(version.id, "result"))
            if found:
                # Not kept: a value that breaks its contract is never handed on.
                status, result = ExecutionStatus.INVALID_RESULT, None
                error_code = "invalid_result"
                error = "The result does not match the tool's result schema: " + "; ".join(
                    f"{path}: {message}" for path, messages in found.items() for message in messages
                )
    if status is not ExecutionStatus.SUCCEEDED and not error_code:
        error_code = status.value
    stdout, stdout_cut = _cap(outcome.stdout or "", limit)
    stderr, stderr_cut = _cap(outcome.stderr or "", limit)
    resource_use = dict(outcome.resource_use)
    if stdout_cut:
        resource_use["stdout_truncated"] = True
    if stderr_cut:
        resource_use["stderr_truncated"] = True
    execution.status = status.value
    execution.result = result
    execution.error = (error or "")[:4000]
    execution.error_code = error_code[:64]
    execution.stdout = stdout
    execution.stderr = stderr
    execution.duration_ms = outcome.duration_ms
    execution.resource_use = resource_use
    execution.finished_at = timezone.now()
    with transaction.atomic():
        if execution._state.adding:
            _insert(execution)
        else:
            execution.save()
        _publish_outcome(execution)
    return execution


_EXECUTION_FIELDS = tuple(Execution._meta.concrete_fields)
_EXECUTION_COLUMNS = tuple(field.column for field in _EXECUTION_FIELDS)


def _insert(execution: Execution) -> None:
    """``execution.save()`` for a new row, with the fields' own conversions but without the
    ORM's SQL compiler: a synchronous run is inserted once, and the compiler cost more CPU
    than the rest of the write."""
    values = tuple(
        field.get_db_prep_save(field.pre_save(execution, True), connection)
        for field in _EXECUTION_FIELDS
    )
    insert_rows(Execution._meta.db_table, _EXECUTION_COLUMNS, [values])
    execution._state.adding = False
    execution._state.db = connection.alias


def _publish_outcome(execution: Execution) -> None:
    if execution.status == ExecutionStatus.SUCCEEDED.value:
        publish(
            ToolExecuted(
                execution_id=execution.id,
                tool_id=execution.tool_id,
                tool_name=execution.tool_name,
                tool_version=execution.tool_version,
                duration_ms=execution.duration_ms or 0.0,
                actor_id=execution.actor_id,
                run_id=execution.run_id,
            )
        )
    else:
        publish(
            ToolFailed(
                execution_id=execution.id,
                tool_id=execution.tool_id,
                tool_name=execution.tool_name,
                tool_version=execution.tool_version,
                status=execution.status,
                error_code=execution.error_code,
                duration_ms=execution.duration_ms,
                actor_id=execution.actor_id,
                run_id=execution.run_id,
            )
        )


# --- Asynchronous runs --------------------------------------------------------------------


def _actor_of(execution: Execution) -> Actor:
    """Who a pending run acts for: the asker, with no more than the token's scopes."""
    if execution.actor_id is None:
        return Actor.system(execution.actor_context or "tools")
    return actor_of_user_id(
        execution.actor_id, token_id=execution.token_id, scopes=execution.token_scopes
    )


def execution_claim(execution_id: uuid.UUID) -> bool:
    """Move a pending execution to running; False if another delivery took it."""
    return bool(
        Execution.objects.filter(id=execution_id, status=ExecutionStatus.PENDING.value).update(
            status=ExecutionStatus.RUNNING.value, started_at=timezone.now()
        )
    )


def execution_run_claimed(execution_id: uuid.UUID) -> None:
    """Run a claimed execution to its end (a worker thread or a Celery worker)."""
    execution = Execution.objects.select_related("tool").get(id=execution_id)
    chosen = (
        ToolVersion.objects.filter(tool_id=execution.tool_id, number=execution.tool_version).first()
        if execution.tool_id
        else None
    )
    if execution.tool is None or chosen is None:
        outcome = RunOutcome(
            ExecutionStatus.FAILED,
            error="The tool was removed before it ran.",
            error_code="removed",
        )
        finish(execution, outcome, version=None)
        return
    outcome = run_spec(
        tool_spec(execution.tool, chosen), execution.arguments, actor=_actor_of(execution)
    )
    finish(execution, outcome, version=chosen)


def _run_on_thread(execution_id: uuid.UUID) -> None:
    try:
        execution_run_claimed(execution_id)
    except Exception:
        logger.exception("background tool run failed", execution_id=str(execution_id))
    finally:
        connection.close()  # this pool thread's own connection


def _background() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        workers = int(settings.LUMINA_TOOLS_ASYNC_WORKERS)
        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tools-async")
    return _pool


def execution_start_pending(execution_id: uuid.UUID) -> None:
    """The ``RunToolExecution`` handler's work: claim, then run once the claim commits.

    In the publishing web process (in-process transport) the run goes to a worker thread
    so the request that got 202 is not held; a Celery worker runs it itself.
    """
    if not execution_claim(execution_id):
        return
    if settings.LUMINA_EVENT_TRANSPORT == "inprocess":
        transaction.on_commit(lambda: _background().submit(_run_on_thread, execution_id))
    else:
        transaction.on_commit(lambda: execution_run_claimed(execution_id))
