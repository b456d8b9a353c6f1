"""Consolidation: each candidate fact becomes ADD, UPDATE, SUPERSEDE or NOOP.

Rules decide first, always, by the candidate's key (``subject|attribute``) and value:

- the same value is already known: NOOP (the turns join its provenance);
- a single-valued attribute whose known value the new one extends ("Acme" → "Acme in
  Lisbon"): UPDATE, the old wording closed in transaction time, still valid;
- a single-valued attribute with another value: SUPERSEDE. The old belief is closed
  (``superseded_at``) and a closed copy records that it held until the new fact began
  (``valid_to``), so "where did she live in 2022" still finds it;
- an older statement arriving after a newer one (imports out of order): ADD as history,
  already closed at the newer fact's start;
- otherwise ADD.

When a chat model is configured it judges each candidate against the similar facts known
(by key and by embedding) and its decision wins; an answer that is not the expected JSON
is recorded as an ``ExtractionError`` and the rules' decision stands.

Nothing is ever deleted here: every decision leaves the earlier rows in place.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence

from django.utils import timezone
from pgvector.django import CosineDistance

from lumina.kernel.bus import publish_many
from lumina.kernel.errors import ApplicationError
from lumina.kernel.events import Event
from lumina.memory.errors import EmbeddingUnavailableError
from lumina.memory.events.records import (
    STORED_BATCH,
    MemoryStored,
    MemorySuperseded,
    MemoryUpdated,
    RecordsEmbedPending,
)
from lumina.memory.models.records import Layer, MemoryRecord
from lumina.memory.records_types import FactDecision
from lumina.memory.services.facts import (
    EXTRACTOR_ACTOR,
    Candidate,
    extraction_error_record,
    parse_json_answer,
)
from lumina.memory.services.record_rows import records_insert
from lumina.providers.api import complete

ADD, UPDATE, SUPERSEDE, NOOP = "add", "update", "supersede", "noop"
DECISIONS = (ADD, UPDATE, SUPERSEDE, NOOP)
JUDGE = "llm-judge"
NEIGHBOURS = 5


@dataclasses.dataclass
class _Plan:
    decision: str
    target: MemoryRecord | None
    reason: str
    judged_by: str = "rules"


def _rules(candidate: Candidate, known: list[MemoryRecord]) -> _Plan:
    value = candidate.norm_value
    # Only what holds now: a value that held before (a closed copy) may come back.
    same = [row for row in known if row.label == value and row.valid_to is None]
    if same:
        return _Plan(NOOP, same[-1], f"already known: '{same[-1].text}'")
    if not candidate.single_valued:
        return _Plan(ADD, None, f"a new value of '{candidate.attribute}'")
    current = [row for row in known if row.valid_to is None]
    if not current:
        return _Plan(ADD, None, "first value of a single-valued attribute")
    latest = max(current, key=lambda row: row.valid_from or row.occurred_at)
    started = latest.valid_from or latest.occurred_at
    if latest.label and (value.startswith(latest.label) or latest.label in value.split(" ")):
        return _Plan(UPDATE, latest, f"refines '{latest.text}'")
    if candidate.occurred_at < started:
        return _Plan(ADD, latest, f"said before '{latest.text}' began: kept as history")
    return _Plan(SUPERSEDE, latest, f"contradicts '{latest.text}', which held until then")


JUDGE_PROMPT = """You keep a memory of facts. Compare the NEW fact with the KNOWN facts and
answer with JSON only: {"decision": "ADD" | "UPDATE" | "SUPERSEDE" | "NOOP",
"target": "<id of the known fact for UPDATE, SUPERSEDE or NOOP>"}.
ADD: new information. UPDATE: refines a known fact that stays true. SUPERSEDE: a known fact
is no longer true. NOOP: already known."""


def _judge(
    candidate: Candidate, neighbours: list[MemoryRecord], plan: _Plan, owner_id: uuid.UUID
) -> _Plan:
    """The chat model's decision, or the rules' plan when its answer cannot be used."""
    if not neighbours:
        return plan
    known = "\n".join(
        f"- id={row.id} text={row.text!r} since={(row.valid_from or row.occurred_at).date()}"
        for row in neighbours
    )
    messages = [
        {"role": "system", "content": JUDGE_PROMPT},
        {
            "role": "user",
            "content": f"NEW: {candidate.text!r} (said {candidate.occurred_at.date()})\n"
            f"KNOWN:\n{known}",
        },
    ]
    raw = ""
    try:
        answer = complete(messages, actor=EXTRACTOR_ACTOR, temperature=0)
        raw = str(answer["choices"][0]["message"]["content"] or "")
        parsed = parse_json_answer(raw)
        decision = str(parsed["decision"]).lower()
        if decision not in DECISIONS:
            raise ValueError(f"unknown decision {decision!r}")
        target = None
        if decision != ADD:
            target_id = str(parsed.get("target", ""))
            target = next((row for row in neighbours if str(row.id) == target_id), None)
            if target is None:
                raise ValueError(f"target {target_id!r} is not one of the known facts")
        return _Plan(decision, target, "judged by the chat model", judged_by="llm")
    except ApplicationError as error:
        message = error.message
    except (ValueError, KeyError, TypeError, IndexError, json.JSONDecodeError) as error:
        message = f"malformed answer: {type(error).__name__}: {error}"
    extraction_error_record(
        owner_id=owner_id,
        extractor=JUDGE,
        turn_ids=candidate.turn_ids,
        error=message,
        raw=raw,
    )
    return plan


def _neighbours(
    owner_id: uuid.UUID, embedding: Sequence[float] | None, known: list[MemoryRecord]
) -> list[MemoryRecord]:
    found = {row.id: row for row in known if row.superseded_at is None}
    if embedding is not None:
        similar = (
            MemoryRecord.objects.filter(
                owner_id=owner_id,
                layer=Layer.SEMANTIC,
                superseded_at__isnull=True,
                expired_at__isnull=True,
                embedding__isnull=False,
            )
            .annotate(distance=CosineDistance("embedding", list(embedding)))
            .filter(distance__lt=0.4)
            .order_by("distance")[:NEIGHBOURS]
        )
        for row in similar:
            found.setdefault(row.id, row)
    return list(found.values())


class _Writes:
    """The rows a consolidation stores and changes, written together: new facts in one
    COPY (embedded first, each distinct text once), changed known facts in one UPDATE."""

    def __init__(
        self,
        owner_id: uuid.UUID,
        embed: Callable[[list[str]], list[list[float]]] | None,
        keep_unembedded: bool,
    ) -> None:
        self.owner_id = owner_id
        self.embed = embed
        self.keep_unembedded = keep_unembedded
        self.new: dict[uuid.UUID, MemoryRecord] = {}
        self.changed: dict[uuid.UUID, MemoryRecord] = {}
        self.unembedded: list[uuid.UUID] = []

    def add(self, row: MemoryRecord) -> None:
        self.new[row.id] = row

    def change(self, row: MemoryRecord) -> None:
        if row.id not in self.new:
            self.changed[row.id] = row

    def flush(self) -> None:
        rows = list(self.new.values())
        missing = [row for row in rows if row.embedding is None]
        if missing and self.embed is not None:
            try:
                vectors = dict(
                    zip(
                        [row.text for row in missing],
                        self.embed([row.text for row in missing]),
                        strict=True,
                    )
                )
            except EmbeddingUnavailableError:
                if not self.keep_unembedded:
                    raise
                vectors = {}
            for row in missing:
                row.embedding = vectors.get(row.text)
        self.unembedded += [row.id for row in rows if row.embedding is None]
        records_insert(rows)
        if self.changed:
            MemoryRecord.objects.bulk_update(
                list(self.changed.values()),
                ["provenance", "importance", "superseded_at", "superseded_by"],
                batch_size=500,
            )
        self.new, self.changed = {}, {}


def consolidate(
    *,
    owner_id: uuid.UUID,
    candidates: Sequence[Candidate],
    embeddings: Sequence[Sequence[float] | None] | None,
    use_llm: bool = False,
    actor_id: uuid.UUID | None = None,
    expires_at: dt.datetime | None = None,
    metadata: Sequence[dict] | None = None,
    embed: Callable[[list[str]], list[list[float]]] | None = None,
    keep_unembedded: bool = False,
) -> list[FactDecision]:
    """Apply each candidate (in the order said) to the owner's facts; the caller's
    transaction holds it all. ``embeddings[i]`` is candidate ``i``'s vector (None, or no
    ``embeddings``: not embedded yet). ``embed``: embeds the facts stored without one
    (``keep_unembedded``: when the model is down they are stored without, and
    ``RecordsEmbedPending`` finishes them; otherwise the error propagates)."""
    if not candidates:
        return []
    if embeddings is None:
        embeddings = [None] * len(candidates)
    writes = _Writes(owner_id, embed, keep_unembedded)
    now = timezone.now()
    order = sorted(range(len(candidates)), key=lambda i: candidates[i].occurred_at)
    keys = {candidate.key for candidate in candidates}
    by_key: dict[str, list[MemoryRecord]] = defaultdict(list)
    for row in MemoryRecord.objects.filter(
        owner_id=owner_id,
        layer=Layer.SEMANTIC,
        fact_key__in=keys,
        superseded_at__isnull=True,
        expired_at__isnull=True,
    ).order_by("recorded_at"):
        by_key[row.fact_key].append(row)

    decisions: list[FactDecision] = []
    stored: list[uuid.UUID] = []
    updated: list[uuid.UUID] = []
    events: list[Event] = []
    for index in order:
        candidate = candidates[index]
        embedding = embeddings[index]
        known = by_key[candidate.key]
        plan = _rules(candidate, known)
        if use_llm:
            plan = _judge(candidate, _neighbours(owner_id, embedding, known), plan, owner_id)
        target = plan.target
        if plan.decision == NOOP and target is not None:
            merged = list(dict.fromkeys([*target.provenance, *candidate.turn_ids]))
            if merged != list(target.provenance) or candidate.importance > target.importance:
                target.provenance = merged
                target.importance = max(target.importance, candidate.importance)
                writes.change(target)
                updated.append(target.id)
            decisions.append(
                FactDecision(NOOP, target.id, target.text, plan.reason, judged_by=plan.judged_by)
            )
            continue

        valid_from = candidate.occurred_at
        valid_to = None
        provenance = list(candidate.turn_ids)
        if plan.decision == UPDATE and target is not None:
            valid_from = target.valid_from or target.occurred_at
            provenance = list(dict.fromkeys([*target.provenance, *candidate.turn_ids]))
        elif plan.decision == ADD and target is not None:
            valid_to = target.valid_from or target.occurred_at  # history, already closed
        fact = MemoryRecord(
            owner_id=owner_id,
            agent_id=candidate.agent_id,
            layer=Layer.SEMANTIC,
            speaker=candidate.subject,
            label=candidate.norm_value,
            text=candidate.text,
            fact_key=candidate.key,
            embedding=list(embedding) if embedding is not None else None,
            metadata=dict(metadata[index]) if metadata is not None else {},
            occurred_at=candidate.occurred_at,
            importance=candidate.importance,
            valid_from=valid_from,
            valid_to=valid_to,
            recorded_at=now,
            provenance=provenance,
            extracted_by=candidate.extracted_by,
            expires_at=expires_at,
        )
        writes.add(fact)
        stored.append(fact.id)
        known.append(fact)
        replaced = None
        if plan.decision in (UPDATE, SUPERSEDE) and target is not None:
            replaced = target.id
            target.superseded_at = now
            target.superseded_by = fact
            writes.change(target)
            known.remove(target)
            if plan.decision == SUPERSEDE:
                closed = MemoryRecord(
                    owner_id=owner_id,
                    agent_id=target.agent_id,
                    layer=Layer.SEMANTIC,
                    speaker=target.speaker,
                    label=target.label,
                    text=target.text,
                    fact_key=target.fact_key,
                    embedding=target.embedding,
                    metadata=target.metadata,
                    occurred_at=target.occurred_at,
                    importance=target.importance,
                    valid_from=target.valid_from,
                    valid_to=candidate.occurred_at,
                    recorded_at=now,
                    provenance=target.provenance,
                    extracted_by=target.extracted_by,
                    expires_at=target.expires_at,
                )
                writes.add(closed)
                stored.append(closed.id)
                known.append(closed)
            events.append(
                MemorySuperseded(
                    owner_id=owner_id,
                    record_id=target.id,
                    superseded_by=fact.id,
                    decision=plan.decision,
                    actor_id=actor_id,
                )
            )
        decisions.append(
            FactDecision(plan.decision, fact.id, fact.text, plan.reason, replaced, plan.judged_by)
        )
        if use_llm:
            # The next judgement reads similar facts from the table: this one among them.
            writes.flush()
    writes.flush()
    for start in range(0, len(stored), STORED_BATCH):
        events.append(
            MemoryStored(
                owner_id=owner_id,
                layer=Layer.SEMANTIC,
                record_ids=tuple(stored[start : start + STORED_BATCH]),
                embedded=not writes.unembedded,
                actor_id=actor_id,
            )
        )
    events += [
        RecordsEmbedPending(
            owner_id=owner_id,
            record_ids=tuple(writes.unembedded[start : start + STORED_BATCH]),
        )
        for start in range(0, len(writes.unembedded), STORED_BATCH)
    ]
    if updated:
        events.append(
            MemoryUpdated(
                owner_id=owner_id,
                record_ids=tuple(dict.fromkeys(updated)),
                changed=("provenance", "importance"),
                actor_id=actor_id,
            )
        )
    publish_many(events)
    return decisions
