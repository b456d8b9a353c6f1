"""Recording ``/v1`` completions as conversation turns, for callers who opted in.

Providers publishes ``CompletionTranscript`` only when the token carries the
``memory.record`` scope or the request names a session in ``X-Lumina-Memory-Session``;
this records what is new in it: the messages after the last assistant message (the
caller's new turns; earlier ones were recorded with the completions that answered them)
and the reply. They are stored as working memory of the user, in that session, with
``source: "v1"`` metadata, the request id and the model.

The user must hold ``memory.write``. Opting in by header is a request made with the
token's authority, so the token's scopes must also cover ``memory.write``; the
``memory.record`` scope is itself the token's consent. Nothing else is recorded, and
a refusal is logged, not raised (the completion has long been answered).

Redelivery records nothing twice: each turn's content hash includes the completion's
time and the turn's position in it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import structlog

from lumina.memory.services.records import TurnInput, turn_check, turns_store
from lumina.security.api import actor_of_user_id, authorize

logger = structlog.get_logger(__name__)

RECORDED_ROLES = frozenset({"user", "assistant"})


def new_turns(messages: Sequence[dict[str, Any]], reply: str) -> list[tuple[str, str]]:
    """(speaker, text) of the turns a completion adds: trailing non-assistant user turns
    after the last assistant message, then the reply."""
    last_assistant = max(
        (i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1
    )
    turns = [
        (str(m.get("name") or m.get("role")), str(m.get("content") or "").strip())
        for m in messages[last_assistant + 1 :]
        if m.get("role") == "user"
    ]
    if reply.strip():
        turns.append(("assistant", reply.strip()))
    return [(speaker, text) for speaker, text in turns if text]


def transcript_record(
    *,
    user_id: uuid.UUID | None,
    token_id: uuid.UUID | None,
    token_scopes: Sequence[str] | None,
    opt_in: str,
    session: str,
    model: str,
    request_id: str,
    messages: Sequence[dict[str, Any]],
    reply: str,
    occurred_at: dt.datetime,
) -> int:
    """Record a completion's new turns; the number recorded (0 when not allowed)."""
    if user_id is None:
        return 0
    scopes = token_scopes if opt_in == "header" else None
    actor = actor_of_user_id(user_id, token_id=token_id, scopes=scopes)
    if not authorize(actor, "memory.write"):
        logger.info("completion not recorded: no memory.write", request_id=request_id)
        return 0
    turns = []
    for position, (speaker, text) in enumerate(new_turns(messages, reply)):
        turn = TurnInput(
            text=text,
            speaker=speaker[:200],
            # The reply a moment after what it answers, so the order survives sorting.
            occurred_at=occurred_at + dt.timedelta(milliseconds=position),
            metadata={"source": "v1", "request_id": request_id[:100], "model": model[:200]},
            session_id=session,
            position=position,
        )
        turn_check(turn)
        turns.append(turn)
    if not turns:
        return 0
    outcome = turns_store(
        owner_id=user_id, turns=turns, actor_id=user_id, keep_when_unembedded=True
    )
    return len(outcome.created)
