"""Execution reads: who may see which runs, filters, and the DTO."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from lumina.security.api import Actor, authorize, require
from lumina.tools.models import Execution
from lumina.tools.types import ExecutionDTO, ExecutionStatus

READ_ALL = "tools.executions.read_all"


def execution_dto(execution: Execution) -> ExecutionDTO:
    return ExecutionDTO(
        id=execution.id,
        tool_id=execution.tool_id,
        tool_name=execution.tool_name,
        tool_version=execution.tool_version,
        status=ExecutionStatus(execution.status),
        arguments=execution.arguments,
        result=execution.result,
        error_code=execution.error_code,
        error=execution.error,
        stdout=execution.stdout,
        stderr=execution.stderr,
        duration_ms=execution.duration_ms,
        resource_use=execution.resource_use,
        actor_id=execution.actor_id,
        model_call_id=execution.model_call_id,
        run_id=execution.run_id,
        created_at=execution.created_at,
        finished_at=execution.finished_at,
    )


def visible_executions(actor: Actor) -> QuerySet[Execution]:
    """Everyone's with ``tools.executions.read_all``; otherwise the actor's own."""
    if authorize(actor, READ_ALL):
        return Execution.objects.all()
    if actor.user_id is None:
        return Execution.objects.none()
    return Execution.objects.filter(actor_id=actor.user_id)


def execution_list(
    *,
    actor: Actor,
    tool: str | None = None,
    status: str | None = None,
    run_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
    since=None,
    until=None,
) -> QuerySet[Execution]:
    if actor_id and actor_id != actor.user_id:
        # Asking for someone else's runs by name is refused, not answered with nothing.
        require(actor, READ_ALL)
    query = visible_executions(actor)
    if tool:
        query = query.filter(tool_name=tool)
    if status:
        query = query.filter(status=status)
    if run_id:
        query = query.filter(run_id=run_id)
    if actor_id:
        query = query.filter(actor_id=actor_id)
    if since:
        query = query.filter(created_at__gte=since)
    if until:
        query = query.filter(created_at__lt=until)
    return query.order_by("-created_at", "-id")


def execution_get(*, actor: Actor, execution_id: uuid.UUID) -> Execution | None:
    """The execution if the actor may see it; None alike when it is missing or not theirs."""
    return visible_executions(actor).filter(id=execution_id).first()
