"""Episodic memory: summaries of a session's turns, recursive for long sessions.

A session is cut into stretches (``STRETCH_TURNS`` turns); each stretch gets a summary
record (layer ``episodic``, ``metadata.kind = "stretch"``) whose provenance is its turns.
A session of more than one stretch then gets a summary of those summaries
(``kind = "session"``, provenance: every turn, ``metadata.children``: the stretch
summaries), as Letta summarises evicted messages recursively. Summaries are a chat
model's when one is configured, extractive otherwise (``services/summaries.py``).

Summarising again after new turns closes the previous session summary (``superseded_at``,
``superseded_by``), never deletes it; stretch summaries whose turns are unchanged are
kept. Summaries are dated at the last turn they cover, so time-aware search finds them
in their period, and embedded like every record.
"""

from __future__ import annotations

import uuid

from django.db import transaction
from django.utils import timezone

from lumina.kernel.bus import publish
from lumina.memory.errors import InvalidInputError
from lumina.memory.events.records import MemoryStored, MemorySuperseded
from lumina.memory.models.records import Layer, MemoryRecord
from lumina.memory.records_types import MemoryRecordDTO
from lumina.memory.selectors.record_access import WRITE, owner_resolve
from lumina.memory.selectors.records import record_dto
from lumina.memory.services.record_embedding import embed_texts
from lumina.memory.services.summaries import summarize
from lumina.security.api import Actor

STRETCH_TURNS = 24
STRETCH_TOKENS = 160  # each stretch's summary, at most
SESSION_TOKENS = 240  # the summary of a session's stretch summaries, at most
STRETCH_HEADER = "Summary of session {session}, {start:%Y-%m-%d}:"
SESSION_HEADER = "Summary of session {session} ({start:%Y-%m-%d} to {end:%Y-%m-%d}):"


def _turn_message(record: MemoryRecord) -> dict[str, str]:
    return {"role": "user", "name": record.speaker or "", "content": record.text}


def _summary_row(
    *,
    owner_id: uuid.UUID,
    session_id: str,
    kind: str,
    text: str,
    method: str,
    turns: list[MemoryRecord],
    children: tuple[uuid.UUID, ...] = (),
) -> MemoryRecord:
    now = timezone.now()
    return MemoryRecord(
        owner_id=owner_id,
        session_id=session_id,
        agent_id=turns[0].agent_id,
        layer=Layer.EPISODIC,
        speaker="summary",
        text=text,
        metadata={"kind": kind, "method": method, "children": [str(c) for c in children]},
        occurred_at=turns[-1].occurred_at,
        valid_from=turns[0].occurred_at,
        valid_to=turns[-1].occurred_at,
        recorded_at=now,
        provenance=[t.id for t in turns],
        extracted_by=method,
    )


def session_summarize(
    *,
    actor: Actor,
    session_id: str,
    user_id: uuid.UUID | None = None,
    method: str = "auto",
) -> MemoryRecordDTO:
    """The session's summary, made (or brought up to date) now."""
    owner_id = owner_resolve(actor, action=WRITE, user_id=user_id)
    if not isinstance(session_id, str) or not session_id.strip() or len(session_id) > 200:
        raise InvalidInputError("session_id", "Name the session to summarise (1-200 characters).")
    if method not in ("auto", "llm", "extractive"):
        raise InvalidInputError("summary", 'summary is "auto", "llm" or "extractive".')
    turns = list(
        MemoryRecord.objects.filter(
            owner_id=owner_id,
            session_id=session_id,
            layer=Layer.WORKING,
            expired_at__isnull=True,
        ).order_by("occurred_at", "recorded_at")
    )
    if not turns:
        raise InvalidInputError("session_id", f"Session '{session_id}' has no turns.")
    summaries = MemoryRecord.objects.filter(
        owner_id=owner_id,
        session_id=session_id,
        layer=Layer.EPISODIC,
        superseded_at__isnull=True,
    )
    current = {tuple(row.provenance): row for row in summaries}
    everything = tuple(t.id for t in turns)
    if everything in current and current[everything].metadata.get("kind") in (
        "session",
        "stretch",
    ):
        return record_dto(current[everything])  # nothing new since the last summary

    stretches = [turns[i : i + STRETCH_TURNS] for i in range(0, len(turns), STRETCH_TURNS)]
    rows: list[MemoryRecord] = []
    stretch_rows: list[MemoryRecord] = []
    for stretch in stretches:
        existing = current.get(tuple(t.id for t in stretch))
        if existing is not None and existing.metadata.get("kind") == "stretch":
            stretch_rows.append(existing)
            continue
        header = STRETCH_HEADER.format(session=session_id, start=stretch[0].occurred_at)
        summary = summarize(
            [_turn_message(t) for t in stretch],
            max_tokens=STRETCH_TOKENS,
            actor=actor,
            method=method,
            header=header,
        )
        row = _summary_row(
            owner_id=owner_id,
            session_id=session_id,
            kind="stretch",
            text=summary.text or header,
            method=summary.method,
            turns=stretch,
        )
        rows.append(row)
        stretch_rows.append(row)
    top = stretch_rows[0]
    if len(stretch_rows) > 1:
        header = SESSION_HEADER.format(
            session=session_id, start=turns[0].occurred_at, end=turns[-1].occurred_at
        )
        summary = summarize(
            [{"role": "user", "name": "summary", "content": r.text} for r in stretch_rows],
            max_tokens=SESSION_TOKENS,
            actor=actor,
            method=method,
            header=header,
        )
        top = _summary_row(
            owner_id=owner_id,
            session_id=session_id,
            kind="session",
            text=summary.text or header,
            method=summary.method,
            turns=turns,
            children=tuple(r.id for r in stretch_rows),
        )
        rows.append(top)
    vectors = embed_texts([row.text for row in rows]) if rows else []
    for row, vector in zip(rows, vectors, strict=True):
        row.embedding = vector
    # The previous session summary (and a lone last stretch that grew) give way.
    stale = [
        row
        for row in current.values()
        if row.metadata.get("kind") == "session"
        or (row.metadata.get("kind") == "stretch" and row not in stretch_rows)
    ]
    now = timezone.now()
    with transaction.atomic():
        MemoryRecord.objects.bulk_create(rows)
        for row in stale:
            row.superseded_at = now
            row.superseded_by = top
            row.save(update_fields=["superseded_at", "superseded_by"])
            publish(
                MemorySuperseded(
                    owner_id=owner_id,
                    record_id=row.id,
                    superseded_by=top.id,
                    decision="resummarised",
                    actor_id=actor.user_id,
                )
            )
        if rows:
            publish(
                MemoryStored(
                    owner_id=owner_id,
                    layer=Layer.EPISODIC,
                    record_ids=tuple(r.id for r in rows),
                    session_ids=(session_id,),
                    actor_id=actor.user_id,
                )
            )
    return record_dto(top)
