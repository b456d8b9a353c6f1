"""Other contexts' events, as realtime notifications, pushed once delivered and committed.

Each handler keeps what a subscriber may see of an event (ids, names, counts, costs;
never texts, arguments, results or anything secret) and names whose it is: the usage,
tool runs and memories of one user, a budget refusal of one user or one API token.
Circuit changes are shared by everyone allowed to subscribe. One push per delivery
batch, whatever its size.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from lumina.kernel.bus import subscribe
from lumina.kernel.events import Event
from lumina.memory.events import MemoryExpired, MemoryStored, MemorySuperseded, MemoryUpdated
from lumina.providers.events import BudgetExceeded, CircuitClosed, CircuitOpened, UsageRecorded
from lumina.security.events import SessionsEnded
from lumina.tools.events import ToolExecuted, ToolFailed
from lumina.ui.events import (
    DocumentDeleted,
    DocumentImported,
    DocumentRenamed,
    DocumentShared,
    DocumentUnshared,
    DocumentVersionCreated,
    DocumentVersionRestored,
)
from lumina.ui.realtime import fanout, topics
from lumina.ui.realtime.fanout import Notification


def _notification(event: Event, topic: topics.Topic, data: dict, **whose) -> Notification:
    return Notification(
        topic=topic.name,
        event=event.name,
        event_id=event.id,
        occurred_at=event.occurred_at.isoformat(),
        data=data,
        **whose,
    )


def _usage(event: UsageRecorded) -> Notification | None:
    if event.user_id is None:
        return None
    data = {
        "request_id": event.request_id,
        "operation": event.operation,
        "status": event.status,
        "stream": event.stream,
        "requested_model": event.requested_model,
        "model": event.model,
        "provider_name": event.provider_name,
        "token_id": str(event.token_id) if event.token_id else None,
        "input_tokens": event.input_tokens,
        "cached_input_tokens": event.cached_input_tokens,
        "output_tokens": event.output_tokens,
        "reasoning_tokens": event.reasoning_tokens,
        "estimated": event.estimated,
        "cost": str(event.cost),
        "latency_ms": event.latency_ms,
        "error_code": event.error_code,
    }
    return _notification(event, topics.USAGE, data, users=(event.user_id,))


def _budget(event: BudgetExceeded) -> Notification:
    data = {
        "budget_id": str(event.budget_id),
        "scope": event.scope,
        "period": event.period,
        "period_start": event.period_start.isoformat(),
        "limit_usd": str(event.limit_usd),
        "spent_usd": str(event.spent_usd),
    }
    # As providers shows budgets: a token's budget to that token, a user's to the user.
    whose = {"tokens": (event.subject_id,)} if event.scope == "token" else {}
    return _notification(event, topics.BUDGETS, data, **(whose or {"users": (event.subject_id,)}))


def _circuit(event: CircuitOpened | CircuitClosed) -> Notification:
    data = {
        "deployment_id": str(event.deployment_id),
        "provider_name": event.provider_name,
        "model": event.model,
        "state": "open" if isinstance(event, CircuitOpened) else "closed",
        "reason": event.reason,
    }
    return _notification(event, topics.CIRCUITS, data)


def _tool(event: ToolExecuted | ToolFailed) -> Notification | None:
    if event.actor_id is None:
        return None
    data = {
        "execution_id": str(event.execution_id),
        "tool_id": str(event.tool_id) if event.tool_id else None,
        "tool_name": event.tool_name,
        "tool_version": event.tool_version,
        "status": event.status if isinstance(event, ToolFailed) else "succeeded",
        "error_code": event.error_code if isinstance(event, ToolFailed) else "",
        "duration_ms": event.duration_ms,
        "run_id": str(event.run_id) if event.run_id else None,
    }
    return _notification(event, topics.TOOLS, data, users=(event.actor_id,))


def _memory(event: MemoryStored | MemoryUpdated | MemorySuperseded | MemoryExpired) -> Notification:
    if isinstance(event, MemorySuperseded):
        data: dict = {
            "record_ids": [str(event.record_id)],
            "superseded_by": str(event.superseded_by),
            "decision": event.decision,
        }
    else:
        data = {"record_ids": [str(i) for i in event.record_ids]}
    if isinstance(event, MemoryStored):
        data.update(layer=event.layer, embedded=event.embedded)
    elif isinstance(event, MemoryUpdated):
        data.update(changed=list(event.changed))
    return _notification(event, topics.MEMORY, data, users=(event.owner_id,))


_DOCUMENT_EVENTS = (
    DocumentRenamed,
    DocumentImported,
    DocumentShared,
    DocumentUnshared,
    DocumentVersionCreated,
    DocumentVersionRestored,
    DocumentDeleted,
)
# What a reader of the document may see of each change: never its content.
_DOCUMENT_FIELDS = (
    "title",
    "previous_title",
    "seq",
    "principal_type",
    "principal_id",
    "permission",
    "can_share",
    "version_id",
    "version_name",
    "upto_seq",
)


def _document(event) -> Notification:
    data = {"document_id": str(event.document_id)}
    for field in _DOCUMENT_FIELDS:
        if hasattr(event, field):
            value = getattr(event, field)
            data[field] = str(value) if isinstance(value, uuid.UUID) else value
    if event.actor_id is not None:
        data["actor_id"] = str(event.actor_id)
    return Notification(
        topic=f"{topics.DOCUMENTS.name}:{event.document_id}",
        event=event.name,
        event_id=event.id,
        occurred_at=event.occurred_at.isoformat(),
        data=data,
    )


_TRANSLATORS: dict[type[Event], Callable[[Any], Notification | None]] = {
    UsageRecorded: _usage,
    BudgetExceeded: _budget,
    CircuitOpened: _circuit,
    CircuitClosed: _circuit,
    ToolExecuted: _tool,
    ToolFailed: _tool,
    MemoryStored: _memory,
    MemoryUpdated: _memory,
    MemorySuperseded: _memory,
    MemoryExpired: _memory,
    **dict.fromkeys(_DOCUMENT_EVENTS, _document),
}


# One handler for every kind, so subscribers see a batch's events in the order published.
@subscribe(*_TRANSLATORS, batch=True)
def push_notifications(events: list[Event]) -> None:
    found = (_TRANSLATORS[type(event)](event) for event in events)
    fanout.notify([n for n in found if n is not None])


@subscribe(SessionsEnded, batch=True)
def recheck_ended_sessions(events: list[SessionsEnded]) -> None:
    # Sessions end without touching the access generation: tell their connections.
    fanout.recheck(users={e.user_id for e in events})
