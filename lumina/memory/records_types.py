"""Values that memory records, imports and searches hand across ``memory.api``.

Frozen dataclasses, never models: other contexts and the HTTP layer read these.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class MemoryRecordDTO:
    id: uuid.UUID
    owner_id: uuid.UUID
    agent_id: str
    session_id: str
    layer: str
    speaker: str
    label: str
    text: str
    external_id: str
    fact_key: str
    metadata: Mapping[str, Any]
    occurred_at: dt.datetime
    importance: float
    access_count: int
    last_accessed_at: dt.datetime | None
    valid_from: dt.datetime | None
    valid_to: dt.datetime | None
    recorded_at: dt.datetime
    superseded_at: dt.datetime | None
    superseded_by: uuid.UUID | None
    provenance: tuple[uuid.UUID, ...]
    extracted_by: str
    expires_at: dt.datetime | None
    expired_at: dt.datetime | None
    embedded: bool

    @property
    def scope(self) -> str:
        return "session" if self.session_id else "agent" if self.agent_id else "user"


@dataclasses.dataclass(frozen=True)
class FactDecision:
    """What consolidation did with one candidate fact, and why."""

    decision: str  # add | update | supersede | noop
    record_id: uuid.UUID  # the fact now standing for the candidate
    text: str
    reason: str
    replaced_id: uuid.UUID | None = None  # update / supersede: the fact closed
    judged_by: str = "rules"  # rules | llm


@dataclasses.dataclass(frozen=True)
class TurnResult:
    record: MemoryRecordDTO
    created: bool  # false: the same turn was recorded before
    facts: tuple[FactDecision, ...] = ()


@dataclasses.dataclass(frozen=True)
class ImportResult:
    imported: int  # turns new to the store
    skipped: int  # turns already stored (same content hash)
    sessions: int
    facts: int  # consolidation decisions other than noop
    embedding: str  # "done", or "pending": finished through the outbox
    record_ids: tuple[uuid.UUID, ...] = ()


@dataclasses.dataclass(frozen=True)
class ExtractionErrorDTO:
    id: uuid.UUID
    owner_id: uuid.UUID
    extractor: str
    turn_ids: tuple[uuid.UUID, ...]
    error: str
    raw_output: str
    created_at: dt.datetime
    resolved_at: dt.datetime | None


@dataclasses.dataclass(frozen=True)
class TimeWindow:
    """A period a question is about, found in its words ("last spring" …)."""

    phrase: str
    start: dt.datetime | None
    end: dt.datetime | None
    # period: during; before/after: open-ended; anchor: a period pinned to another memory.
    kind: str
    anchor: str = ""


@dataclasses.dataclass(frozen=True)
class MemoryHit:
    record: MemoryRecordDTO
    score: float
    # Each component of the score: per-retriever scores and ranks, relevance, recency,
    # importance, time.
    scores: Mapping[str, float]
    why: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class MemorySearchResult:
    hits: tuple[MemoryHit, ...]
    mode: str
    query: str
    time_windows: tuple[TimeWindow, ...] = ()
    reference_time: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class ScopePolicyDTO:
    owner_id: uuid.UUID
    scope: str
    ttl_days: float | None
    half_life_days: float
    default: bool  # no row stored: the built-in defaults
