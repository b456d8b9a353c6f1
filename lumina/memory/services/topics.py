"""Topics of a scope: extracted on request, kept current as records arrive.

``topics_extract`` clusters a scope's embedded records (``topic_clustering``) and replaces
that scope's topics in one transaction, publishing ``TopicsExtracted``. Between
extractions, ``topics_assign`` (called by the ``MemoryStored`` handler) puts each new
embedded record into the nearest leaf topic of every scope it belongs to that has topics,
when it is close enough, and moves that topic's centroid; a scope that has grown
by a third since its topics were extracted is extracted again, so keywords follow
what is being talked about without a full pass on every turn.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from lumina.kernel.bus import publish
from lumina.kernel.errors import NotFoundError
from lumina.kernel.lazy import LazyImport
from lumina.memory.errors import InvalidInputError
from lumina.memory.events.topics import TopicsExtracted
from lumina.memory.models.records import EMBEDDING_DIMENSIONS, Layer, MemoryRecord
from lumina.memory.models.topics import Topic, TopicMembership, TopicScope
from lumina.memory.models.vectors import Collection, VectorRecord
from lumina.memory.selectors.record_access import READ, WRITE, may_see, owner_resolve
from lumina.memory.selectors.topics import (
    graph_read,
    scope_resolve,
    topic_children,
    topic_list,
    topic_members,
    topic_to_dto,
)
from lumina.memory.services.entity_extraction import normalize
from lumina.memory.services.topic_clustering import cluster
from lumina.memory.topics_types import Graph, TopicDTO, TopicExtraction, TopicMemberDTO
from lumina.security.api import Actor, require

np = LazyImport("numpy")  # loaded with the first computation, not with the server

__all__ = [
    "TopicNotFoundError",
    "graph_get",
    "topic_get",
    "topic_members_get",
    "topics_assign",
    "topics_extract",
    "topics_get",
]

CLUSTERED_LAYERS = (Layer.WORKING, Layer.EPISODIC, Layer.SEMANTIC)
# The newest records of a scope that one extraction clusters.
MAX_RECORDS = 20_000
# A new record joins the nearest leaf only when at least this similar to its centroid.
ASSIGN_MIN_SIMILARITY = 0.25
# Re-extract a scope in the handler once this share of its size arrived since.
REFRESH_SHARE = 1 / 3
# Above this size a scope is re-extracted only on request (REST, CLI), not in a handler.
REFRESH_MAX_RECORDS = 5_000


def _records(owner_id: uuid.UUID, scope: str, scope_key: str):
    rows = MemoryRecord.objects.filter(
        owner_id=owner_id,
        layer__in=CLUSTERED_LAYERS,
        expired_at__isnull=True,
        superseded_at__isnull=True,
        embedding__isnull=False,
    )
    if scope == TopicScope.AGENT:
        rows = rows.filter(agent_id=scope_key)
    elif scope == TopicScope.SESSION:
        rows = rows.filter(session_id=scope_key)
    return rows


def _label(keywords: Sequence[str], index: int) -> str:
    return ", ".join(keywords[:3]) if keywords else f"topic {index + 1}"


def topics_extract(
    *, actor: Actor, scope: str, key: str = "", user_id: uuid.UUID | None = None
) -> TopicExtraction:
    """Cluster the scope's records into topics, replacing its previous topics."""
    owner_id = owner_resolve(actor, action=WRITE, user_id=user_id)
    scope, scope_key = scope_resolve(owner_id=owner_id, scope=scope, key=key)
    return _extract(owner_id=owner_id, scope=scope, scope_key=scope_key, actor_id=actor.user_id)


def _load(owner_id: uuid.UUID, scope: str, scope_key: str):
    """(member ids, texts, embeddings, member kind) of the scope, newest first."""
    if scope == TopicScope.COLLECTION:
        collection = Collection.objects.get(id=scope_key)
        column = f"vector_{collection.active_slot}"
        rows = list(
            VectorRecord.objects.filter(collection=collection, **{f"{column}__isnull": False})
            .order_by("-id")
            .values_list("id", "text", column)[:MAX_RECORDS]
        )
        return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], "vector"
    rows = list(
        _records(owner_id, scope, scope_key)
        .order_by("-occurred_at", "id")
        .values_list("id", "text", "embedding")[:MAX_RECORDS]
    )
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], "record"


def _extract(
    *, owner_id: uuid.UUID, scope: str, scope_key: str, actor_id: uuid.UUID | None
) -> TopicExtraction:
    ids, texts, embeddings, member_kind = _load(owner_id, scope, scope_key)
    result = cluster(texts, np.asarray(embeddings, dtype=np.float32)) if ids else None
    now = timezone.now()
    with transaction.atomic():
        Topic.objects.filter(owner_id=owner_id, scope=scope, scope_key=scope_key).delete()
        topics: dict[int, Topic] = {}
        if result is not None:
            vectors = np.asarray(embeddings, dtype=np.float32)
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.where(norms == 0, 1.0, norms)
            # Parents first, so leaves can point at them.
            for clustered in sorted(result.topics, key=lambda t: -t.level):
                centroid = vectors[list(clustered.members)].mean(axis=0)
                topic = Topic(
                    owner_id=owner_id,
                    scope=scope,
                    scope_key=scope_key,
                    parent=topics.get(clustered.parent) if clustered.parent is not None else None,
                    level=clustered.level,
                    label=_label(clustered.keywords, clustered.index)[:200],
                    keywords=[k[:100] for k in clustered.keywords],
                    keyword_weights=list(clustered.weights),
                    size=len(clustered.members),
                    extracted_from=len(ids),
                    centroid=centroid.tolist() if len(centroid) == EMBEDDING_DIMENSIONS else None,
                    created_at=now,
                    updated_at=now,
                )
                topic.save()
                topics[clustered.index] = topic
            memberships = []
            for clustered in result.topics:
                if clustered.level != 0:
                    continue
                topic = topics[clustered.index]
                centroid = vectors[list(clustered.members)].mean(axis=0)
                centroid /= np.linalg.norm(centroid) or 1.0
                for position in clustered.members:
                    similarity = float(vectors[position] @ centroid)
                    member = {
                        "record_id" if member_kind == "record" else "vector_id": ids[position]
                    }
                    memberships.append(
                        TopicMembership(topic=topic, similarity=round(similarity, 6), **member)
                    )
            TopicMembership.objects.bulk_create(memberships, batch_size=2000)
        publish(
            TopicsExtracted(
                owner_id=owner_id,
                scope=scope,
                scope_key=scope_key,
                topic_ids=tuple(t.id for t in topics.values()),
                record_count=len(ids),
                actor_id=actor_id,
            )
        )
    children: dict[uuid.UUID, list[uuid.UUID]] = {}
    for topic in topics.values():
        if topic.parent_id is not None:
            children.setdefault(topic.parent_id, []).append(topic.id)
    ordered = sorted(topics.values(), key=lambda t: (-t.level, -t.size, str(t.id)))
    return TopicExtraction(
        owner_id=owner_id,
        scope=scope,
        scope_key=scope_key,
        record_count=len(ids),
        silhouette=None if result is None else result.silhouette,
        topics=tuple(topic_to_dto(t, children.get(t.id, ())) for t in ordered),
    )


def _scopes_of(
    owner_id: uuid.UUID, agent_id: str, session_id: str
) -> list[tuple[uuid.UUID, str, str]]:
    """The topic scopes a record belongs to: its owner's, its agent's, its session's."""
    scopes = [(owner_id, TopicScope.USER.value, "")]
    if agent_id:
        scopes.append((owner_id, TopicScope.AGENT.value, agent_id))
    if session_id:
        scopes.append((owner_id, TopicScope.SESSION.value, session_id))
    return scopes


def topics_assign(
    *, record_ids: Sequence[uuid.UUID], owner_ids: Iterable[uuid.UUID] | None = None
) -> int:
    """Put new embedded records into the nearest leaf topic of each scope they belong to.

    Returns how many memberships were added. Scopes without topics are left alone: their
    topics come from an extraction. A scope that grew by ``REFRESH_SHARE`` since its
    topics were made (and is not larger than ``REFRESH_MAX_RECORDS``) is extracted again.
    ``owner_ids``: the records' owners, when the caller knows them; owners without a
    topic end it with one query, before any record is read.
    """
    if (
        owner_ids is not None
        and not Topic.objects.filter(
            owner_id__in=set(owner_ids), level=0, centroid__isnull=False
        ).exists()
    ):
        return 0

    def embedded(ids: Sequence[uuid.UUID]):
        return MemoryRecord.objects.filter(
            id__in=list(ids),
            layer__in=CLUSTERED_LAYERS,
            embedding__isnull=False,
            expired_at__isnull=True,
        )

    # Scopes first, embeddings only of the records whose scopes have topics: an import
    # into a memory without topics (the common case) reads no vectors at all.
    # One condition per scope, not per record: an import's records share a few scopes.
    scope_keys: set[tuple[uuid.UUID, str, str]] = set()
    for owner_id, agent_id, session_id in (
        embedded(record_ids).values_list("owner_id", "agent_id", "session_id").distinct()
    ):
        scope_keys.update(_scopes_of(owner_id, agent_id, session_id))
    if not scope_keys:
        return 0
    wanted = Q(pk__in=[])
    for owner_id, scope, scope_key in scope_keys:
        wanted |= Q(owner_id=owner_id, scope=scope, scope_key=scope_key)
    leaves = list(
        Topic.objects.filter(wanted, level=0, centroid__isnull=False).values_list(
            "id", "owner_id", "scope", "scope_key", "centroid", "size"
        )
    )
    if not leaves:
        return 0
    by_scope: dict[tuple[uuid.UUID, str, str], list[tuple[uuid.UUID, np.ndarray]]] = {}
    for topic_id, owner_id, scope, scope_key, centroid, _ in leaves:
        vector = np.asarray(centroid, dtype=np.float32)
        vector /= np.linalg.norm(vector) or 1.0
        by_scope.setdefault((owner_id, scope, scope_key), []).append((topic_id, vector))
    joining = Q(pk__in=[])
    for owner_id, scope, scope_key in by_scope:
        column = {TopicScope.AGENT: "agent_id", TopicScope.SESSION: "session_id"}.get(scope)
        joining |= Q(owner_id=owner_id, **({column: scope_key} if column else {}))
    ids = list(record_ids)
    records = [
        row
        for start in range(0, len(ids), 5000)
        for row in embedded(ids[start : start + 5000])
        .filter(joining)
        .values_list("id", "owner_id", "agent_id", "session_id", "embedding")
    ]
    already = set(
        TopicMembership.objects.filter(
            record_id__in=[r[0] for r in records], topic_id__in=[leaf[0] for leaf in leaves]
        ).values_list("record_id", "topic__scope", "topic__scope_key")
    )
    memberships: list[TopicMembership] = []
    arrivals: set[tuple[uuid.UUID, str, str]] = set()
    sums: dict[uuid.UUID, np.ndarray] = {}
    for record_id, owner_id, agent_id, session_id, embedding in records:
        vector = np.asarray(embedding, dtype=np.float32)
        vector /= np.linalg.norm(vector) or 1.0
        for key in _scopes_of(owner_id, agent_id, session_id):
            if key not in by_scope or (record_id, key[1], key[2]) in already:
                continue
            arrivals.add(key)
            similarity, topic_id = max(
                ((float(vector @ centroid), topic_id) for topic_id, centroid in by_scope[key]),
                key=lambda pair: pair[0],
            )
            if similarity < ASSIGN_MIN_SIMILARITY:
                continue
            memberships.append(
                TopicMembership(topic_id=topic_id, record_id=record_id, similarity=similarity)
            )
            sums[topic_id] = sums.get(topic_id, 0) + vector
    now = timezone.now()
    with transaction.atomic():
        created = TopicMembership.objects.bulk_create(memberships, ignore_conflicts=True)
        added: dict[uuid.UUID, int] = {}
        for membership in memberships:
            added[membership.topic_id] = added.get(membership.topic_id, 0) + 1
        size_of = {leaf[0]: leaf[5] for leaf in leaves}
        centroid_of = {leaf[0]: np.asarray(leaf[4], dtype=np.float32) for leaf in leaves}
        for topic_id, count in added.items():
            # Running mean of the members' normalised embeddings.
            size = size_of[topic_id]
            centroid = (centroid_of[topic_id] * size + sums[topic_id]) / (size + count)
            Topic.objects.filter(id=topic_id).update(
                size=F("size") + count, centroid=centroid.tolist(), updated_at=now
            )
            parent = Topic.objects.filter(id=topic_id).values_list("parent_id", flat=True)[0]
            if parent is not None:
                Topic.objects.filter(id=parent).update(size=F("size") + count, updated_at=now)
    for key in arrivals:
        _maybe_refresh(key)
    return len(created)


def _maybe_refresh(key: tuple[uuid.UUID, str, str]) -> None:
    owner_id, scope, scope_key = key
    extracted_from = (
        Topic.objects.filter(owner_id=owner_id, scope=scope, scope_key=scope_key, level=0)
        .values_list("extracted_from", flat=True)
        .first()
    )
    if extracted_from is None:
        return
    total = _records(owner_id, scope, scope_key).count()
    grown = total - extracted_from
    if total <= REFRESH_MAX_RECORDS and grown >= max(3, extracted_from * REFRESH_SHARE):
        _extract(owner_id=owner_id, scope=scope, scope_key=scope_key, actor_id=None)


class TopicNotFoundError(NotFoundError):
    code = "topic_not_found"

    def __init__(self, topic_id: object) -> None:
        message = f"No topic with id '{topic_id}'."
        super().__init__(message, fields={"topic_id": [message]})


def topics_get(
    *, actor: Actor, scope: str = TopicScope.USER, key: str = "", user_id: uuid.UUID | None = None
) -> list[TopicDTO]:
    """A scope's topics, of the caller's memory (anyone's with ``memory.manage``)."""
    owner_id = owner_resolve(actor, action=READ, user_id=user_id)
    scope, scope_key = scope_resolve(owner_id=owner_id, scope=scope, key=key)
    return topic_list(owner_id=owner_id, scope=scope, scope_key=scope_key)


def _visible_topic(actor: Actor, topic_id: uuid.UUID) -> Topic:
    """The topic, or a 404 alike for one that does not exist and one the caller may not see
    (a caller without ``memory.read`` at all is refused first, with 403)."""
    require(actor, READ)
    topic = Topic.objects.filter(id=topic_id).first()
    if topic is None or not may_see(actor, topic.owner_id, action=READ):
        raise TopicNotFoundError(topic_id)
    return topic


def topic_get(*, actor: Actor, topic_id: uuid.UUID) -> TopicDTO:
    topic = _visible_topic(actor, topic_id)
    return topic_to_dto(topic, topic_children(topic))


def topic_members_get(
    *, actor: Actor, topic_id: uuid.UUID, limit: int = 100
) -> list[TopicMemberDTO]:
    if not 1 <= limit <= 1000:
        raise InvalidInputError("limit", "Between 1 and 1000.")
    return topic_members(topic=_visible_topic(actor, topic_id), limit=limit)


def graph_get(
    *,
    actor: Actor,
    user_id: uuid.UUID | None = None,
    session_id: str = "",
    entity: str = "",
    min_weight: float = 1.0,
    kinds: tuple[str, ...] = (),
    limit: int = 200,
) -> Graph:
    """The caller's entity graph (anyone's with ``memory.manage``) for visualization."""
    owner_id = owner_resolve(actor, action=READ, user_id=user_id)
    return graph_read(
        owner_id=owner_id,
        session_id=session_id,
        entity_key=normalize(entity) if entity else "",
        min_weight=min_weight,
        kinds=kinds,
        limit=limit,
    )
