"""Keeping the entity graph current: records in, entities, mentions and relations out.

``graph_index_records`` reads each record's entities and relations (the deterministic
extractor always; an LLM as well when a real chat model is configured) and upserts them.
It is idempotent: mentions and evidence rows are unique per record, and counts and
weights are recomputed from those rows for what a call touched, so indexing a record
twice (a redelivered event, ``memory topics rebuild``) changes nothing. An LLM answer
that is not the JSON asked for is recorded as an ``ExtractionError`` and the rules'
reading is kept: nothing is dropped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from django.db import connection, transaction
from django.utils import timezone

from lumina.memory.models.records import ExtractionError, Layer, MemoryRecord
from lumina.memory.models.topics import Entity, EntityMention, Relation, RelationEvidence
from lumina.memory.services.entity_extraction import (
    Extraction,
    MalformedExtraction,
    extract,
    llm_prompt,
    normalize,
    parse_llm_answer,
)

__all__ = [
    "GraphIndexResult",
    "GraphIndexer",
    "graph_index_records",
    "graph_indexer_inline",
    "graph_rebuild",
]

log = logging.getLogger(__name__)

# Pinned blocks are instructions, not things that were said: they stay out of the graph.
INDEXED_LAYERS = (Layer.WORKING, Layer.EPISODIC, Layer.SEMANTIC)
LLM_EXTRACTOR = "graph-llm"
MAX_ERROR_OUTPUT = 4000
BATCH = 500

# (text, speaker) -> the model's answer text; replaceable in tests by a loopback provider.
LlmCall = Callable[[str, str | None], str]


@dataclasses.dataclass(frozen=True)
class GraphIndexResult:
    records: int
    entities: int
    mentions: int
    relations: int
    extraction_errors: int


def _llm_answer(text: str, speaker: str | None) -> str:
    from lumina.providers.api import complete
    from lumina.security.api import Actor

    response = complete(
        llm_prompt(text, speaker=speaker),
        actor=Actor.system("memory"),
        temperature=0,
        response_format={"type": "json_object"},
    )
    return response["choices"][0]["message"]["content"] or ""


def _llm_configured() -> bool:
    from lumina.providers.api import real_chat_model_available

    return real_chat_model_available()


def _merge(rules: Extraction, llm: Extraction) -> Extraction:
    entities = {e.key: e for e in rules.entities}
    for entity in llm.entities:
        known = entities.get(entity.key)
        if known is None or known.kind == "other":
            entities[entity.key] = entity
    relations = {(r.source, r.target, r.kind): r for r in rules.relations}
    for relation in llm.relations:
        relations.setdefault((relation.source, relation.target, relation.kind), relation)
    return Extraction(entities=tuple(entities.values()), relations=tuple(relations.values()))


class _Record(NamedTuple):
    """What indexing reads of a record (model instances cost more to build than the rest
    of a record's indexing)."""

    id: uuid.UUID
    owner_id: uuid.UUID
    text: str
    speaker: str
    occurred_at: dt.datetime
    layer: str
    session_id: str


def _rules(records: Sequence[_Record]) -> dict[uuid.UUID, Extraction]:
    """The deterministic reading of each record, with sentence-opening names counted when
    the batch or the owner's graph already knows them."""
    first = {r.id: extract(r.text, speaker=r.speaker or None) for r in records}
    known: dict[uuid.UUID, set[str]] = {}
    deferred: dict[uuid.UUID, set[str]] = {}
    for record in records:
        known.setdefault(record.owner_id, set()).update(first[record.id].keys())
        deferred.setdefault(record.owner_id, set()).update(first[record.id].deferred)
    for owner_id, keys in deferred.items():
        unknown = keys - known[owner_id]
        if unknown:
            known[owner_id].update(
                Entity.objects.filter(owner_id=owner_id, key__in=list(unknown)).values_list(
                    "key", flat=True
                )
            )
    for record in records:
        if set(first[record.id].deferred) & known[record.owner_id]:
            first[record.id] = extract(
                record.text, speaker=record.speaker or None, known=known[record.owner_id]
            )
    return first


def _read(
    record: _Record, rules: Extraction, llm: LlmCall | None, errors: list[ExtractionError]
) -> tuple[Extraction, str]:
    speaker = record.speaker or None
    if llm is None:
        return rules, "rules"
    try:
        answer = llm(record.text, speaker)
    except Exception as error:  # the provider failed: the rules' reading stands, recorded
        errors.append(
            ExtractionError(
                owner_id=record.owner_id,
                extractor=LLM_EXTRACTOR,
                turn_ids=[record.id],
                error=f"the chat model did not answer: {type(error).__name__}",
            )
        )
        return rules, "rules"
    try:
        return _merge(rules, parse_llm_answer(answer, speaker=speaker)), "llm"
    except MalformedExtraction as error:
        errors.append(
            ExtractionError(
                owner_id=record.owner_id,
                extractor=LLM_EXTRACTOR,
                turn_ids=[record.id],
                error=str(error)[:500],
                raw_output=answer[:MAX_ERROR_OUTPUT],
            )
        )
        return rules, "rules"


def _chunks(items: Sequence[uuid.UUID], size: int) -> Iterable[Sequence[uuid.UUID]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def graph_index_records(
    *, record_ids: Sequence[uuid.UUID], llm: LlmCall | bool | None = None
) -> GraphIndexResult:
    """Index these records into their owners' graphs.

    ``llm``: None asks providers whether a real chat model is configured; False never
    calls one; a callable is used as the model.
    """
    indexer = GraphIndexer(llm=llm)
    indexer.index(record_ids)
    return indexer.finish()


class GraphIndexer:
    """Indexes records batch after batch (``index``) in the caller's order, then recounts
    once (``finish``) what they touched: each recount reads every mention of the entities
    it touches, and an import's batches touch the same few entities. A failure before
    ``finish`` leaves the caller to index again, and the recount with it."""

    def __init__(self, *, llm: LlmCall | bool | None = None) -> None:
        if llm is None:
            llm = _llm_answer if _llm_configured() else False
        self._llm = llm if callable(llm) else None
        self._totals = [0, 0, 0, 0, 0]
        self._entities: set[uuid.UUID] = set()
        self._relations: set[uuid.UUID] = set()

    def index(self, record_ids: Sequence[uuid.UUID]) -> None:
        for chunk in _chunks(list(dict.fromkeys(record_ids)), BATCH):
            result = _index_chunk(chunk, self._llm, self._entities, self._relations)
            for i, value in enumerate(dataclasses.astuple(result)):
                self._totals[i] += value

    def finish(self) -> GraphIndexResult:
        with transaction.atomic():
            _recount(entity_ids=self._entities, relation_ids=self._relations)
        return GraphIndexResult(*self._totals)


def graph_indexer_inline() -> GraphIndexer | None:
    """An indexer for a writer that reads its records into the graph itself, inside its
    own transaction; None when a chat model reads each record too, which is a call per
    record: that stays with the ``MemoryStored`` handler, after the commit."""
    return None if _llm_configured() else GraphIndexer(llm=False)


def _index_chunk(
    record_ids: Sequence[uuid.UUID],
    llm: LlmCall | None,
    touched_entities: set[uuid.UUID],
    touched_relations: set[uuid.UUID],
) -> GraphIndexResult:
    """Index one chunk in a transaction; the entities and relations whose counts it
    changed are added to the ``touched_`` sets."""
    records = [
        _Record(*row)
        for row in MemoryRecord.objects.filter(id__in=record_ids, layer__in=INDEXED_LAYERS)
        .order_by("occurred_at", "recorded_at", "id")
        .values_list(*_Record._fields)
    ]
    if not records:
        return GraphIndexResult(0, 0, 0, 0, 0)
    errors: list[ExtractionError] = []
    rules = _rules(records)
    readings = [(record, *_read(record, rules[record.id], llm, errors)) for record in records]
    now = timezone.now()
    with transaction.atomic():
        # Entities: one upsert per owner and key; names and kinds of new ones win.
        wanted: dict[tuple[uuid.UUID, str], tuple[str, str]] = {}
        for record, extraction, _ in readings:
            for entity in extraction.entities:
                key = (record.owner_id, entity.key)
                known = wanted.get(key)
                if known is None or (known[1] == "other" and entity.kind != "other"):
                    wanted[key] = (entity.name[:100], entity.kind)
        Entity.objects.bulk_create(
            [
                Entity(owner_id=owner, key=key[:100], name=name, kind=kind, first_seen_at=now)
                for (owner, key), (name, kind) in wanted.items()
            ],
            ignore_conflicts=True,
        )
        owners = {owner for owner, _ in wanted}
        ids: dict[tuple[uuid.UUID, str], uuid.UUID] = {}
        typed: dict[str, list[uuid.UUID]] = {}
        for row in Entity.objects.filter(
            owner_id__in=owners, key__in=[key for _, key in wanted]
        ).values("id", "owner_id", "key", "kind"):
            pair = (row["owner_id"], row["key"])
            if pair in wanted:
                ids[pair] = row["id"]
                # An entity first seen untyped takes the first kind a later reading gives.
                if row["kind"] == "other" and wanted[pair][1] != "other":
                    typed.setdefault(wanted[pair][1], []).append(row["id"])
        for kind, entity_ids in typed.items():
            Entity.objects.filter(id__in=entity_ids).update(kind=kind)

        mentions = [
            (ids[(record.owner_id, entity.key)], record.id, 1.0)
            for record, extraction, _ in readings
            for entity in extraction.entities
            if (record.owner_id, entity.key) in ids
        ]
        _insert_new(_MENTIONS_INSERT, mentions)

        edges: dict[tuple[uuid.UUID, uuid.UUID, uuid.UUID, str], str] = {}
        evidence: list[tuple[tuple[uuid.UUID, uuid.UUID, uuid.UUID, str], uuid.UUID, str]] = []
        for record, extraction, how in readings:
            for relation in extraction.relations:
                source = ids.get((record.owner_id, relation.source))
                target = ids.get((record.owner_id, relation.target))
                if source is None or target is None or source == target:
                    continue
                edge = (record.owner_id, source, target, relation.kind)
                if edges.get(edge) != "llm":
                    edges[edge] = how
                evidence.append((edge, record.id, relation.evidence[:200]))
        Relation.objects.bulk_create(
            [
                Relation(
                    owner_id=owner,
                    source_id=source,
                    target_id=target,
                    kind=kind,
                    extracted_by=how,
                    first_seen_at=now,
                )
                for (owner, source, target, kind), how in edges.items()
            ],
            ignore_conflicts=True,
        )
        relation_ids: dict[tuple[uuid.UUID, uuid.UUID, uuid.UUID, str], uuid.UUID] = {}
        sources = {edge[1] for edge in edges}
        for row in Relation.objects.filter(source_id__in=sources).values(
            "id", "owner_id", "source_id", "target_id", "kind"
        ):
            edge = (row["owner_id"], row["source_id"], row["target_id"], row["kind"])
            if edge in edges:
                relation_ids[edge] = row["id"]
        _insert_new(
            _EVIDENCE_INSERT,
            [
                (relation_ids[edge], record_id, quote)
                for edge, record_id, quote in evidence
                if edge in relation_ids
            ],
        )
        context = _context_mentions(records)
        touched_entities.update(ids.values(), context)
        touched_relations.update(relation_ids.values())
        if errors:
            ExtractionError.objects.bulk_create(errors)
    return GraphIndexResult(
        records=len(records),
        entities=len(ids),
        mentions=len(mentions),
        relations=len(relation_ids),
        extraction_errors=len(errors),
    )


# A turn that says "she", "they" or "there" most likely means someone or somewhere the
# turns just before it named ("My sister Clara got the job" … "She's moving there").
PRONOUN = re.compile(r"\b(?:he|she|him|her|his|hers|they|them|their|there)\b", re.I)
CONTEXT_TURNS = 2
CONTEXT_WEIGHT = 0.5


def _context_mentions(records: Sequence[_Record]) -> set[uuid.UUID]:
    """Weighted mentions of what the previous turns of the session named, for turns that
    refer back by pronoun; returns the entities it touched."""
    referring = [
        r for r in records if r.layer == Layer.WORKING and r.session_id and PRONOUN.search(r.text)
    ]
    if not referring:
        return set()
    sessions: dict[tuple[uuid.UUID, str], list[dict]] = {}
    for row in (
        MemoryRecord.objects.filter(
            owner_id__in={r.owner_id for r in referring},
            session_id__in={r.session_id for r in referring},
            layer=Layer.WORKING,
        )
        .order_by("occurred_at", "recorded_at", "id")
        .values("id", "owner_id", "session_id", "speaker")
    ):
        sessions.setdefault((row["owner_id"], row["session_id"]), []).append(row)
    before: dict[uuid.UUID, list[uuid.UUID]] = {}
    speakers: dict[uuid.UUID, set[str]] = {}
    for record in referring:
        turns = sessions.get((record.owner_id, record.session_id), [])
        position = next((i for i, t in enumerate(turns) if t["id"] == record.id), None)
        if position:
            before[record.id] = [
                t["id"] for t in turns[max(0, position - CONTEXT_TURNS) : position]
            ]
            # Who has spoken so far: the same whether the rest of the session is
            # written yet (a turn recorded live, a batch of an import) or not.
            speakers[record.id] = {
                normalize(t["speaker"]) for t in turns[: position + 1] if t["speaker"]
            }
    named: dict[uuid.UUID, set[tuple[uuid.UUID, str]]] = {}
    for record_id, entity_id, key in EntityMention.objects.filter(
        record_id__in={i for ids in before.values() for i in ids}, weight=1.0
    ).values_list("record_id", "entity_id", "entity__key"):
        named.setdefault(record_id, set()).add((entity_id, key))
    own: dict[uuid.UUID, set[uuid.UUID]] = {}
    for record_id, entity_id in EntityMention.objects.filter(
        record_id__in=list(before)
    ).values_list("record_id", "entity_id"):
        own.setdefault(record_id, set()).add(entity_id)
    mentions = [
        (entity_id, record_id, CONTEXT_WEIGHT)
        for record_id, previous in before.items()
        for entity_id in {
            entity_id
            for prior in previous
            for entity_id, key in named.get(prior, ())
            if key not in speakers[record_id]
        }
        - own.get(record_id, set())
    ]
    _insert_new(_MENTIONS_INSERT, mentions)
    return {entity_id for entity_id, _, _ in mentions}


# Mentions and evidence go in as one statement of three arrays, the rows already there
# skipped (indexing a record again adds nothing): what bulk_create(ignore_conflicts=True)
# does, without a model instance and a quoted literal per value.
_MENTIONS_INSERT = f"""
INSERT INTO {EntityMention._meta.db_table} (entity_id, record_id, weight)
SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::float8[])
ON CONFLICT DO NOTHING
"""  # noqa: S608 (constants)
_EVIDENCE_INSERT = f"""
INSERT INTO {RelationEvidence._meta.db_table} (relation_id, record_id, quote)
SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::text[])
ON CONFLICT DO NOTHING
"""  # noqa: S608 (constants)


def _insert_new(sql: str, rows: Sequence[tuple]) -> None:
    if rows:
        with connection.cursor() as cursor:
            cursor.execute(sql, [list(column) for column in zip(*rows, strict=True)])


_RECOUNT_ENTITIES = """
UPDATE memory_entity AS e
   SET mention_count = s.n, first_seen_at = s.first, last_seen_at = s.last
  FROM (SELECT m.entity_id, count(*) FILTER (WHERE m.weight >= 1) AS n,
               min(r.occurred_at) AS first,
               max(r.occurred_at) AS last
          FROM memory_entitymention m JOIN memory_memoryrecord r ON r.id = m.record_id
         WHERE m.entity_id = ANY(%s) GROUP BY m.entity_id) AS s
 WHERE e.id = s.entity_id
"""
_REWEIGH_RELATIONS = """
UPDATE memory_relation AS rel
   SET weight = s.n, first_seen_at = s.first, last_seen_at = s.last
  FROM (SELECT v.relation_id, count(*) AS n, min(r.occurred_at) AS first,
               max(r.occurred_at) AS last
          FROM memory_relationevidence v JOIN memory_memoryrecord r ON r.id = v.record_id
         WHERE v.relation_id = ANY(%s) GROUP BY v.relation_id) AS s
 WHERE rel.id = s.relation_id
"""


def _recount(*, entity_ids: set[uuid.UUID], relation_ids: set[uuid.UUID]) -> None:
    """Counts and weights from the rows that support them (idempotent by construction)."""
    with connection.cursor() as cursor:
        if entity_ids:
            cursor.execute(_RECOUNT_ENTITIES, [list(entity_ids)])
        if relation_ids:
            cursor.execute(_REWEIGH_RELATIONS, [list(relation_ids)])


def graph_rebuild(
    *, owner_id: uuid.UUID | None = None, llm: LlmCall | bool | None = False
) -> GraphIndexResult:
    """Drop and re-read an owner's graph (everyone's with None) from their records."""
    scope = MemoryRecord.objects.filter(layer__in=INDEXED_LAYERS)
    entities = Entity.objects.all()
    if owner_id is not None:
        scope = scope.filter(owner_id=owner_id)
        entities = entities.filter(owner_id=owner_id)
    with transaction.atomic():
        entities.delete()  # cascades to mentions, relations and their evidence
    ids = list(scope.order_by("occurred_at", "id").values_list("id", flat=True))
    return graph_index_records(record_ids=ids, llm=llm)
