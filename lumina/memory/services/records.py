"""Recording turns, one by one or many at once, and finishing those that wait for embeddings.

A turn is stored once: its content hash (owner, scope, speaker, text, when it was said,
and its position in an imported session) is unique per owner, so recording or importing
the same turn again changes nothing. New turns are embedded in batches while earlier
batches are written, in one transaction with the facts the rules extract from them and
the events announcing both.

When the embedding model is down, a single turn is refused (503, nothing written); an
import is kept: its turns are stored without embeddings (text search finds them at once)
and ``RecordsEmbedPending`` goes through the outbox, which retries until the model answers
and the import's fact extraction has run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import queue
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from django.db import transaction
from django.utils import timezone

from lumina.kernel.bus import publish_many
from lumina.kernel.events import Event
from lumina.memory.errors import EmbeddingUnavailableError, InvalidInputError
from lumina.memory.events.records import (
    STORED_BATCH,
    MemoryStored,
    MemoryUpdated,
    RecordsEmbedPending,
)
from lumina.memory.models.records import ExtractionError, Layer, MemoryRecord
from lumina.memory.records_types import FactDecision, TurnResult
from lumina.memory.selectors.record_access import WRITE, owner_resolve
from lumina.memory.selectors.records import record_dto
from lumina.memory.services import policy
from lumina.memory.services.consolidation import consolidate
from lumina.memory.services.facts import (
    LLM,
    Candidate,
    TurnForExtraction,
    llm_available,
    llm_extract,
    rules_extract,
)
from lumina.memory.services.graph import graph_indexer_inline
from lumina.memory.services.record_embedding import BATCH, embed_distinct, embed_texts
from lumina.memory.services.record_rows import records_insert
from lumina.security.api import Actor

MAX_TEXT = 32_000
MAX_SPEAKER = 200
MAX_SCOPE_ID = 200
MAX_METADATA_BYTES = 16_000
LLM_CHUNK = 20


@dataclasses.dataclass(frozen=True)
class TurnInput:
    text: str
    speaker: str = ""
    occurred_at: dt.datetime | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    session_id: str = ""
    agent_id: str = ""
    external_id: str = ""
    importance: float | None = None
    position: int | None = None  # index in its session, for imported turns


@dataclasses.dataclass(frozen=True)
class StoreOutcome:
    created: list[MemoryRecord]
    existing: list[MemoryRecord]
    facts: list[FactDecision]
    pending: bool


def turn_check(turn: TurnInput, *, where: str = "") -> None:
    """Refuse a turn that cannot be stored, naming the field (``where`` prefixes it)."""

    def field(name: str) -> str:
        return f"{where}{name}"

    if not isinstance(turn.text, str) or not turn.text.strip():
        raise InvalidInputError(field("text"), "The text must not be empty.")
    if len(turn.text) > MAX_TEXT:
        raise InvalidInputError(field("text"), f"At most {MAX_TEXT} characters.")
    if "\x00" in turn.text:
        raise InvalidInputError(field("text"), "The text must not contain NUL characters.")
    if len(turn.speaker) > MAX_SPEAKER:
        raise InvalidInputError(field("speaker"), f"At most {MAX_SPEAKER} characters.")
    for name, value in (("session_id", turn.session_id), ("agent_id", turn.agent_id)):
        if len(value) > MAX_SCOPE_ID:
            raise InvalidInputError(field(name), f"At most {MAX_SCOPE_ID} characters.")
    for name, value in (
        ("speaker", turn.speaker),
        ("session_id", turn.session_id),
        ("agent_id", turn.agent_id),
        ("id", turn.external_id),
    ):
        if "\x00" in value:
            raise InvalidInputError(field(name), "Must not contain NUL characters.")
    if not isinstance(turn.metadata, dict):
        raise InvalidInputError(field("metadata"), "The metadata must be a JSON object.")
    try:
        encoded = json.dumps(turn.metadata, allow_nan=False)
    except (TypeError, ValueError):
        raise InvalidInputError(field("metadata"), "The metadata must be plain JSON.") from None
    if "\\u0000" in encoded:
        # PostgreSQL's jsonb cannot hold NUL.
        raise InvalidInputError(field("metadata"), "Must not contain NUL characters.")
    size = len(encoded.encode())
    if size > MAX_METADATA_BYTES:
        raise InvalidInputError(field("metadata"), f"At most {MAX_METADATA_BYTES} bytes.")
    if turn.importance is not None and not 0 <= turn.importance <= 1:
        raise InvalidInputError(field("importance"), "Between 0 and 1.")


def content_hash(owner_id: uuid.UUID, turn: TurnInput, occurred_at: dt.datetime) -> str:
    key = json.dumps(
        [
            str(owner_id),
            turn.agent_id,
            turn.session_id,
            turn.speaker,
            turn.text,
            occurred_at.isoformat(),
            turn.external_id,
            turn.position,
        ],
        ensure_ascii=False,
    )
    return hashlib.sha256(key.encode()).hexdigest()


def turn_record(
    *,
    actor: Actor,
    text: str,
    speaker: str = "",
    session_id: str = "",
    agent_id: str = "",
    occurred_at: dt.datetime | None = None,
    metadata: dict[str, Any] | None = None,
    importance: float | None = None,
    user_id: uuid.UUID | None = None,
) -> TurnResult:
    """Record one turn now: embedded before it is stored (503 if the model is down)."""
    owner_id = owner_resolve(actor, action=WRITE, user_id=user_id)
    turn = TurnInput(
        text=text,
        speaker=speaker,
        occurred_at=occurred_at,
        metadata=dict(metadata or {}),
        session_id=session_id,
        agent_id=agent_id,
        importance=importance,
    )
    turn_check(turn)
    outcome = turns_store(
        owner_id=owner_id, turns=[turn], actor_id=actor.user_id, keep_when_unembedded=False
    )
    if outcome.created:
        return TurnResult(record_dto(outcome.created[0]), True, tuple(outcome.facts))
    return TurnResult(record_dto(outcome.existing[0]), False)


class _EmbedLane:
    """One thread running the model for an import: the turns' batches in order, and the
    facts' texts ahead of the batches still queued. Consolidation then waits at most for
    the batch being embedded, and the model never runs twice at once (two runs side by
    side on two cores took the facts' embedding from 0.15 to 24 s)."""

    def __init__(self) -> None:
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._thread = threading.Thread(target=self._run, name="memory-embed", daemon=True)
        self._thread.start()

    def submit(self, texts: list[str], *, first: bool = False) -> Future:
        future: Future = Future()
        self._queue.put((0 if first else 1, next(self._order), texts, future))
        return future

    def embed_now(self, texts: list[str]) -> list[list[float]]:
        return self.submit(texts, first=True).result()

    def close(self) -> None:
        self._queue.put((2, next(self._order), None, None))
        self._thread.join()

    def _run(self) -> None:
        while True:
            _, _, texts, future = self._queue.get()
            if future is None:
                return
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(embed_distinct(texts))
                except BaseException as error:  # raised again to the caller waiting on it
                    future.set_exception(error)


def turns_store(
    *,
    owner_id: uuid.UUID,
    turns: Sequence[TurnInput],
    actor_id: uuid.UUID | None,
    keep_when_unembedded: bool,
    index_graph: bool = False,
) -> StoreOutcome:
    """Store the turns not stored before, with their rule-extracted facts.

    The caller has checked each turn. ``keep_when_unembedded``: when the embedding model
    is down, store the turns anyway and finish them through the outbox (imports);
    otherwise raise ``EmbeddingUnavailableError`` with nothing written. ``index_graph``:
    read each batch into the entity graph as it is written, while the next is embedded,
    instead of leaving it to the ``MemoryStored`` handler after the commit (ADR 0040).
    """
    now = timezone.now()
    policies = policy.policies_for(owner_id)
    rows: list[MemoryRecord] = []
    seen: set[str] = set()
    for turn in turns:
        occurred_at = turn.occurred_at or now
        digest = content_hash(owner_id, turn, occurred_at)
        if digest in seen:
            continue
        seen.add(digest)
        scope = policy.scope_of(agent_id=turn.agent_id, session_id=turn.session_id)
        rows.append(
            MemoryRecord(
                owner_id=owner_id,
                agent_id=turn.agent_id,
                session_id=turn.session_id,
                layer=Layer.WORKING,
                speaker=turn.speaker,
                text=turn.text,
                external_id=turn.external_id,
                content_hash=digest,
                metadata=turn.metadata,
                occurred_at=occurred_at,
                importance=0.5 if turn.importance is None else turn.importance,
                recorded_at=now,
                expires_at=policy.expires_at_for(policies[scope], layer=Layer.WORKING, start=now),
            )
        )
    existing = {
        row.content_hash: row
        for start in range(0, len(rows), 5000)
        for row in MemoryRecord.objects.filter(
            owner_id=owner_id,
            layer=Layer.WORKING,
            content_hash__in=[r.content_hash for r in rows[start : start + 5000]],
        )
    }
    new = [row for row in rows if row.content_hash not in existing]
    if not new:
        return StoreOutcome([], list(existing.values()), [], pending=False)

    # Turns only: facts are embedded once consolidation knows which it stores (a fact
    # already known needs no vector), each distinct text once.
    chunks = [new[start : start + BATCH] for start in range(0, len(new), BATCH)]
    pending = False
    decisions: list[FactDecision] = []
    lane = _EmbedLane()
    futures = [lane.submit([row.text for row in chunk]) for chunk in chunks]
    try:
        # The rules read the turns while the first batch is embedded.
        candidates = rules_extract(_for_extraction(new))
        # The rules' facts need no turn's vector: without a chat model they are
        # consolidated once the first batch shows the model answers, while the other
        # batches are embedded.
        early = bool(candidates) and not llm_available()
        graph = graph_indexer_inline() if index_graph else None
        with transaction.atomic():
            for chunk, future in zip(chunks, futures, strict=True):
                vectors = None
                if not pending:
                    try:
                        vectors = future.result()
                    except EmbeddingUnavailableError:
                        if not keep_when_unembedded:
                            raise
                        pending = True
                        for queued in futures:
                            queued.cancel()
                if vectors is not None:
                    for row, vector in zip(chunk, vectors, strict=True):
                        row.embedding = vector
                records_insert(chunk, ignore_conflicts=True)
                if graph is not None:
                    graph.index([row.id for row in chunk])
                if early and not pending:
                    decisions = _facts_consolidate(
                        owner_id,
                        new,
                        candidates,
                        None,
                        actor_id,
                        keep_unembedded=keep_when_unembedded,
                        embed=lane.embed_now,
                    )
                    early, candidates = False, []
            if graph is not None:
                graph.finish()
            decisions += _after_store(
                owner_id,
                new,
                candidates,
                pending,
                actor_id,
                keep_when_unembedded,
                graph_indexed=graph is not None,
                embed=lane.embed_now,
            )
    finally:
        for future in futures:
            future.cancel()
        lane.close()
    return StoreOutcome(new, list(existing.values()), decisions, pending)


def _for_extraction(rows: Sequence[MemoryRecord]) -> list[TurnForExtraction]:
    return [
        TurnForExtraction(
            id=row.id,
            speaker=row.speaker,
            text=row.text,
            occurred_at=row.occurred_at,
            agent_id=row.agent_id,
            session_id=row.session_id,
        )
        for row in rows
    ]


def _after_store(
    owner_id: uuid.UUID,
    new: list[MemoryRecord],
    candidates: list[Candidate],
    pending: bool,
    actor_id: uuid.UUID | None,
    keep_unembedded: bool,
    *,
    graph_indexed: bool = False,
    embed: Callable[[list[str]], list[list[float]]] = embed_distinct,
) -> list[FactDecision]:
    """Events for the stored turns and, once embedded, their facts consolidated."""
    ids = [row.id for row in new]
    events: list[Event] = [
        MemoryStored(
            owner_id=owner_id,
            layer=Layer.WORKING,
            record_ids=tuple(ids[start : start + STORED_BATCH]),
            session_ids=tuple(
                sorted({row.session_id for row in new[start : start + STORED_BATCH]})
            ),
            embedded=not pending,
            actor_id=actor_id,
            graph_indexed=graph_indexed,
        )
        for start in range(0, len(ids), STORED_BATCH)
    ]
    if pending:
        # Facts wait for embeddings: consolidation compares them by vector too.
        unembedded = [row.id for row in new if row.embedding is None]
        events += [
            RecordsEmbedPending(
                owner_id=owner_id, record_ids=tuple(unembedded[start : start + STORED_BATCH])
            )
            for start in range(0, len(unembedded), STORED_BATCH)
        ]
        embedded_ids = {row.id for row in new if row.embedding is not None}
        candidates = [c for c in candidates if c.turn_ids[0] in embedded_ids]
    publish_many(events)
    return _facts_consolidate(
        owner_id, new, candidates, None, actor_id, keep_unembedded=keep_unembedded, embed=embed
    )


def _facts_consolidate(
    owner_id: uuid.UUID,
    turns: list[MemoryRecord],
    candidates: list[Candidate],
    vectors: list[list[float] | None] | None,
    actor_id: uuid.UUID | None,
    *,
    keep_unembedded: bool = False,
    embed: Callable[[list[str]], list[list[float]]] = embed_distinct,
) -> list[FactDecision]:
    """Rule facts, plus a chat model's when one is configured, consolidated. Without
    ``vectors``, consolidation embeds the facts it stores (``keep_unembedded``: a model
    that is down leaves them to the outbox instead of failing)."""
    use_llm = llm_available()
    if use_llm and vectors is None:
        # The chat model's judgement compares each candidate with similar facts by vector.
        vectors = list(embed_distinct([c.text for c in candidates])) if candidates else []
    if use_llm:
        extra: list[Candidate] = []
        extractable = [row for row in turns if row.embedding is not None]
        for start in range(0, len(extractable), LLM_CHUNK):
            chunk = _for_extraction(extractable[start : start + LLM_CHUNK])
            extra += llm_extract(chunk, owner_id=owner_id)
        if extra:
            candidates = [*candidates, *extra]
            vectors = [*vectors, *embed_texts([c.text for c in extra])]
    if not candidates:
        return []
    policies = policy.policies_for(owner_id)
    scope = policy.scope_of(agent_id=candidates[0].agent_id, session_id="")
    # A fact carries the metadata of the turn it came from: a caller's ids (a dataset's
    # dialogue id, a message id) come back on the fact's hits too.
    metadata_of = {row.id: row.metadata for row in turns}
    return consolidate(
        owner_id=owner_id,
        candidates=candidates,
        embeddings=vectors,
        metadata=[dict(metadata_of.get(c.turn_ids[0]) or {}) for c in candidates],
        embed=embed,
        keep_unembedded=keep_unembedded,
        use_llm=use_llm,
        actor_id=actor_id,
        expires_at=policy.expires_at_for(
            policies[scope], layer=Layer.SEMANTIC, start=timezone.now()
        ),
    )


def records_embed_pending(*, owner_id: uuid.UUID, record_ids: Sequence[uuid.UUID]) -> int:
    """Embed the listed records that still lack embeddings, then extract and consolidate
    the facts of those that are turns. Raises ``EmbeddingUnavailableError`` (the outbox
    tries again later) while the model is down. Returns how many were embedded."""
    rows = list(
        MemoryRecord.objects.filter(
            owner_id=owner_id, id__in=list(record_ids), embedding__isnull=True
        ).order_by("occurred_at")
    )
    if not rows:
        return 0
    vectors = embed_texts([row.text for row in rows])
    for row, vector in zip(rows, vectors, strict=True):
        row.embedding = vector
    with transaction.atomic():
        MemoryRecord.objects.bulk_update(rows, ["embedding"], batch_size=500)
        turns = [row for row in rows if row.layer == Layer.WORKING]
        candidates = rules_extract(_for_extraction(turns))
        publish_many(
            [
                MemoryUpdated(
                    owner_id=owner_id,
                    record_ids=tuple(row.id for row in rows[start : start + STORED_BATCH]),
                    changed=("embedding",),
                )
                for start in range(0, len(rows), STORED_BATCH)
            ]
        )
        _facts_consolidate(owner_id, turns, candidates, None, None)
    return len(rows)


def extraction_errors_retry(*, owner_id: uuid.UUID | None = None) -> tuple[int, int]:
    """Ask the chat model again about the turns of unresolved LLM extraction errors; an
    error whose turns now extract is marked resolved and their facts consolidated. A
    failure records a new error (the old one stays unresolved). Returns (tried, resolved).
    Nothing to do without a real chat model."""
    if not llm_available():
        return 0, 0
    errors = ExtractionError.objects.filter(resolved_at__isnull=True, extractor=LLM)
    if owner_id is not None:
        errors = errors.filter(owner_id=owner_id)
    tried = resolved = 0
    for error in list(errors.order_by("created_at")[:100]):
        tried += 1
        turns = list(
            MemoryRecord.objects.filter(owner_id=error.owner_id, id__in=error.turn_ids)
            .defer("search")
            .order_by("occurred_at")
        )
        before = ExtractionError.objects.filter(owner_id=error.owner_id).count()
        candidates = llm_extract(_for_extraction(turns), owner_id=error.owner_id)
        if ExtractionError.objects.filter(owner_id=error.owner_id).count() > before:
            continue
        with transaction.atomic():
            if candidates:
                consolidate(
                    owner_id=error.owner_id,
                    candidates=candidates,
                    embeddings=embed_texts([c.text for c in candidates]),
                    metadata=[dict(turns[0].metadata or {}) for _ in candidates],
                )
            error.resolved_at = timezone.now()
            error.save(update_fields=["resolved_at"])
        resolved += 1
    return tried, resolved
