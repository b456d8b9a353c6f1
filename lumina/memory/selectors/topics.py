"""Reading topics and the entity graph of one owner.

These take an owner already resolved and authorised by ``services.topics`` (the entry
points REST, admin, CLI and ``memory.api`` call); they only read.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

from django.db.models import Count, Q

from lumina.memory.errors import CollectionNotFoundError, InvalidInputError
from lumina.memory.models.records import MemoryRecord
from lumina.memory.models.topics import (
    Entity,
    EntityMention,
    Relation,
    RelationEvidence,
    Topic,
    TopicMembership,
    TopicScope,
)
from lumina.memory.models.vectors import Collection
from lumina.memory.topics_types import Graph, GraphEdge, GraphNode, TopicDTO, TopicMemberDTO

__all__ = [
    "graph_read",
    "scope_resolve",
    "topic_children",
    "topic_list",
    "topic_members",
    "topic_to_dto",
]

MAX_NODES = 500
PROVENANCE_PER_EDGE = 20
MEMBERS_PAGE = 100


def scope_resolve(*, owner_id: uuid.UUID, scope: str, key: str) -> tuple[str, str]:
    """``(scope, scope_key)`` as stored: a collection is named by the caller, kept by id."""
    if scope not in TopicScope.values:
        raise InvalidInputError("scope", f"Choose one of: {', '.join(TopicScope.values)}.")
    key = (key or "").strip()
    if scope == TopicScope.USER:
        if key:
            raise InvalidInputError("key", "A user's topics take no key.")
        return scope, ""
    if not key:
        raise InvalidInputError("key", f"Name the {scope} whose topics these are.")
    if len(key) > 200:
        raise InvalidInputError("key", "At most 200 characters.")
    if scope == TopicScope.COLLECTION:
        collection = Collection.objects.filter(owner_id=owner_id, name=key).first()
        if collection is None:
            raise CollectionNotFoundError(key)
        return scope, str(collection.id)
    return scope, key


def topic_to_dto(topic: Topic, children: Sequence[uuid.UUID] = ()) -> TopicDTO:
    return TopicDTO(
        id=topic.id,
        owner_id=topic.owner_id,
        scope=topic.scope,
        scope_key=topic.scope_key,
        parent_id=topic.parent_id,
        level=topic.level,
        label=topic.label,
        keywords=tuple(topic.keywords),
        keyword_weights=tuple(topic.keyword_weights),
        size=topic.size,
        children=tuple(children),
        updated_at=topic.updated_at,
    )


def topic_list(*, owner_id: uuid.UUID, scope: str, scope_key: str) -> list[TopicDTO]:
    """The scope's topics: parents first, then leaves, each largest first."""
    topics = list(
        Topic.objects.filter(owner_id=owner_id, scope=scope, scope_key=scope_key).order_by(
            "-level", "-size", "id"
        )
    )
    children: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for topic in topics:
        if topic.parent_id is not None:
            children[topic.parent_id].append(topic.id)
    return [topic_to_dto(t, children.get(t.id, ())) for t in topics]


def topic_children(topic: Topic) -> tuple[uuid.UUID, ...]:
    return tuple(
        Topic.objects.filter(parent_id=topic.id)
        .order_by("-size", "id")
        .values_list("id", flat=True)
    )


def topic_members(*, topic: Topic, limit: int = MEMBERS_PAGE) -> list[TopicMemberDTO]:
    """The records of a topic (of its leaves, for a parent), closest to its centre first."""
    leaves = [topic.id] if topic.level == 0 else list(topic.children.values_list("id", flat=True))
    rows = (
        TopicMembership.objects.filter(topic_id__in=leaves)
        .select_related("record", "vector")
        .order_by("-similarity", "id")[:limit]
    )
    members = []
    for row in rows:
        if row.record is not None:
            members.append(
                TopicMemberDTO(
                    record_id=str(row.record.id),
                    text=row.record.text,
                    similarity=row.similarity,
                    occurred_at=row.record.occurred_at,
                )
            )
        elif row.vector is not None:
            members.append(
                TopicMemberDTO(
                    record_id=row.vector.external_id,
                    text=row.vector.text,
                    similarity=row.similarity,
                    occurred_at=None,
                )
            )
    return members


def graph_read(
    *,
    owner_id: uuid.UUID,
    session_id: str = "",
    entity_key: str = "",
    min_weight: float = 1.0,
    kinds: tuple[str, ...] = (),
    limit: int = 200,
) -> Graph:
    """The owner's entity graph for visualization: the ``limit`` most mentioned entities
    (of one session's records, or around one entity, when asked) and the relations among
    them of at least ``min_weight``, each with the records it was read from."""
    if not 1 <= limit <= MAX_NODES:
        raise InvalidInputError("limit", f"Between 1 and {MAX_NODES}.")
    if min_weight < 0:
        raise InvalidInputError("min_weight", "Zero or more.")
    entities = Entity.objects.filter(owner_id=owner_id)
    records = MemoryRecord.objects.filter(owner_id=owner_id, expired_at__isnull=True)
    if session_id:
        records = records.filter(session_id=session_id)
        entities = entities.filter(
            id__in=EntityMention.objects.filter(record__in=records).values("entity_id")
        )
    if entity_key:
        centre = Entity.objects.filter(owner_id=owner_id, key=entity_key).first()
        if centre is None:
            return Graph(owner_id=owner_id, nodes=(), edges=(), truncated=False)
        around = Relation.objects.filter(Q(source=centre) | Q(target=centre))
        entities = entities.filter(
            Q(id=centre.id)
            | Q(id__in=around.values("source_id"))
            | Q(id__in=around.values("target_id"))
        )
    counted = entities.annotate(
        seen=Count("mentions", filter=Q(mentions__record__in=records))
    ).filter(seen__gt=0)
    picked = list(counted.order_by("-seen", "name", "id")[: limit + 1])
    truncated = len(picked) > limit
    picked = picked[:limit]
    ids = [e.id for e in picked]
    relations = Relation.objects.filter(
        owner_id=owner_id, source_id__in=ids, target_id__in=ids, weight__gte=min_weight
    )
    if kinds:
        relations = relations.filter(kind__in=kinds)
    if session_id:
        relations = relations.filter(
            id__in=RelationEvidence.objects.filter(record__in=records).values("relation_id")
        )
    relations = list(relations.order_by("-weight", "id")[: MAX_NODES * 4])
    provenance: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    evidence = (
        RelationEvidence.objects.filter(relation__in=relations, record__in=records)
        .order_by("relation_id", "-record__occurred_at")
        .values_list("relation_id", "record_id")
    )
    for relation_id, record_id in evidence:
        if len(provenance[relation_id]) < PROVENANCE_PER_EDGE:
            provenance[relation_id].append(record_id)
    return Graph(
        owner_id=owner_id,
        nodes=tuple(
            GraphNode(
                id=e.id,
                name=e.name,
                kind=e.kind,
                mentions=e.seen,
                first_seen_at=e.first_seen_at,
                last_seen_at=e.last_seen_at,
            )
            for e in picked
        ),
        edges=tuple(
            GraphEdge(
                id=r.id,
                source=r.source_id,
                target=r.target_id,
                kind=r.kind,
                weight=r.weight,
                extracted_by=r.extracted_by,
                provenance=tuple(provenance.get(r.id, ())),
            )
            for r in relations
        ),
        truncated=truncated,
    )
