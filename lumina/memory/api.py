"""The memory context's public interface: the only module other contexts may import.

Plain values and frozen dataclasses in and out, never models or querysets. Every call
takes the ``Actor`` it acts for and is authorised like the REST endpoint that does the
same thing. Sections per area; each area adds its names to ``__all__`` in its section.
"""

from __future__ import annotations

__all__: list[str] = []

# --- Vectors (mv) ----------------------------------------------------------------------
# A ``collection`` is the caller's own collection by name, or any visible one by id.

import uuid as _uuid
from collections.abc import Callable as _Callable
from collections.abc import Mapping as _Mapping
from typing import Any as _Any

from lumina.memory.selectors import vectors as _vector_reads
from lumina.memory.services import vectors as _vector_writes
from lumina.memory.vector_types import (
    CollectionInfo,
    RetrieverScore,
    SearchResult,
    UpsertResult,
    VectorHit,
    VectorItem,
)
from lumina.security.api import Actor as _Actor

__all__ += [
    "CollectionInfo",
    "RetrieverScore",
    "SearchResult",
    "UpsertResult",
    "VectorHit",
    "VectorItem",
    "collection_create",
    "collection_delete",
    "collection_get",
    "collection_list",
    "collection_reembed",
    "collection_reindex",
    "collection_update",
    "vectors_delete",
    "vectors_get",
    "vectors_search",
    "vectors_upsert",
]

Ref = str | _uuid.UUID


def collection_create(*, actor: _Actor, name: str, **options: _Any) -> CollectionInfo:
    """A new collection; options: embedding_model, dimension, distance (cosine/l2/ip),
    description, hnsw_m, hnsw_ef_construction, default_ef_search, owner_id, build_index."""
    return _vector_writes.collection_create(actor=actor, name=name, **options)


def collection_get(*, actor: _Actor, collection: Ref) -> CollectionInfo:
    return _vector_reads.collection_get(actor=actor, ref=collection)


def collection_list(*, actor: _Actor, everyone: bool = False) -> list[CollectionInfo]:
    return _vector_reads.collection_list(actor=actor, everyone=everyone)


def collection_update(*, actor: _Actor, collection: Ref, **changes: _Any) -> CollectionInfo:
    """Change ``description`` or ``default_ef_search``."""
    return _vector_writes.collection_update(actor=actor, ref=collection, **changes)


def collection_delete(*, actor: _Actor, collection: Ref) -> None:
    _vector_writes.collection_delete(actor=actor, ref=collection)


def collection_reindex(*, actor: _Actor, collection: Ref) -> CollectionInfo:
    """(Re)build the HNSW index, concurrently when called outside a transaction."""
    return _vector_writes.collection_reindex(actor=actor, ref=collection)


def collection_reembed(
    *,
    actor: _Actor,
    collection: Ref,
    model: str,
    batch_size: int = 64,
    max_batches: int | None = None,
    progress: _Callable[[int, int], None] | None = None,
) -> CollectionInfo:
    """Move to another embedding model in resumable batches; searches keep working."""
    return _vector_writes.collection_reembed(
        actor=actor,
        ref=collection,
        model=model,
        batch_size=batch_size,
        max_batches=max_batches,
        progress=progress,
    )


def vectors_upsert(*, actor: _Actor, collection: Ref, records: list[dict]) -> UpsertResult:
    """Records ``{"id", "vector"?, "text"?, "metadata"?}``; all written or none."""
    return _vector_writes.vectors_upsert(actor=actor, ref=collection, records=records)


def vectors_get(
    *, actor: _Actor, collection: Ref, ids: list[str], include_vectors: bool = False
) -> list[VectorItem]:
    return _vector_reads.vectors_get(
        actor=actor, ref=collection, ids=ids, include_vectors=include_vectors
    )


def vectors_delete(
    *,
    actor: _Actor,
    collection: Ref,
    ids: list[str] | None = None,
    filter: _Mapping[str, _Any] | None = None,
) -> int:
    return _vector_writes.vectors_delete(actor=actor, ref=collection, ids=ids, filter=filter)


def vectors_search(*, actor: _Actor, collection: Ref, **query: _Any) -> SearchResult:
    """query/vector, k, mode (vector/text/hybrid), filter, ef_search, weights, mmr,
    mmr_lambda, candidates: see ``selectors.vectors.vectors_search``."""
    return _vector_reads.vectors_search(actor=actor, ref=collection, **query)


# --- Memory records, import, search (mc) -------------------------------------------------
# Memories of a user (``user_id``: another user's, with memory.manage): turns, imports,
# facts, pinned blocks and search. See docs/memory.md.


from lumina.memory.records_types import (  # noqa: E402
    ExtractionErrorDTO,
    FactDecision,
    ImportResult,
    MemoryHit,
    MemoryRecordDTO,
    MemorySearchResult,
    ScopePolicyDTO,
    TimeWindow,
    TurnResult,
)
from lumina.memory.selectors import records as _record_reads  # noqa: E402
from lumina.memory.services import imports as _imports  # noqa: E402
from lumina.memory.services import pinned as _pinned  # noqa: E402
from lumina.memory.services import policy as _policy  # noqa: E402
from lumina.memory.services import records as _records  # noqa: E402
from lumina.memory.services import search as _search  # noqa: E402

__all__ += [
    "ExtractionErrorDTO",
    "FactDecision",
    "ImportResult",
    "MemoryHit",
    "MemoryRecordDTO",
    "MemorySearchResult",
    "ScopePolicyDTO",
    "TimeWindow",
    "TurnResult",
    "extraction_errors",
    "memories_export",
    "memories_import",
    "memory_get",
    "memory_history",
    "memory_list",
    "memory_search",
    "pinned_create",
    "pinned_list",
    "pinned_remove",
    "pinned_update",
    "scope_policies",
    "scope_policy_set",
    "turn_record",
]


def turn_record(*, actor: _Actor, text: str, **turn: _Any) -> TurnResult:
    """Record one turn now (speaker, session_id, agent_id, occurred_at, metadata,
    importance, user_id); embedded before it is stored, 503 if the model is down."""
    return _records.turn_record(actor=actor, text=text, **turn)


def memories_import(
    *, actor: _Actor, text: str, fmt: str = "json", **defaults: _Any
) -> ImportResult:
    """Import a JSON or JSONL history (``fmt``); defaults: user_id, agent_id, session_id."""
    return _imports.records_import(actor=actor, text=text, fmt=fmt, **defaults)


def memories_export(*, actor: _Actor, **options: _Any) -> list[str]:
    """JSONL lines of the turns (``include_facts``: and facts); ``user_id``."""
    return list(_imports.records_export(actor=actor, **options))


def memory_search(
    *, actor: _Actor, query: str, user_id: _uuid.UUID | None = None, **options: _Any
) -> MemorySearchResult:
    """Options: k, mode (hybrid/vector/text/graph), layers, session_id, agent_id, metadata
    (a filter), occurred_after/before, as_of, valid_at, now, weights, time_aware."""
    if "layers" in options:
        options["layers"] = tuple(options["layers"])
    search = _search.SearchQuery(query=query, **options)
    return _search.memory_search(actor=actor, search=search, user_id=user_id)


def memory_list(*, actor: _Actor, **filters: _Any) -> list[MemoryRecordDTO]:
    """Filters: user_id, layer, session_id, agent_id, as_of, include_expired,
    include_superseded, occurred_after, occurred_before."""
    return list(_record_reads.record_list(actor=actor, **filters))


def memory_get(*, actor: _Actor, record_id: _uuid.UUID) -> MemoryRecordDTO:
    return _record_reads.record_get(actor=actor, record_id=record_id)


def memory_history(*, actor: _Actor, record_id: _uuid.UUID) -> list[MemoryRecordDTO]:
    """Every version of a fact or pinned block, oldest belief first."""
    return _record_reads.record_history(actor=actor, record_id=record_id)


def extraction_errors(
    *, actor: _Actor, user_id: _uuid.UUID | None = None
) -> list[ExtractionErrorDTO]:
    return _record_reads.extraction_error_list(actor=actor, user_id=user_id)


def pinned_list(*, actor: _Actor, user_id: _uuid.UUID | None = None) -> list[MemoryRecordDTO]:
    return _pinned.pinned_list(actor=actor, user_id=user_id)


def pinned_create(*, actor: _Actor, label: str, text: str, **options: _Any) -> MemoryRecordDTO:
    return _pinned.pinned_create(actor=actor, label=label, text=text, **options)


def pinned_update(*, actor: _Actor, block_id: _uuid.UUID, **changes: _Any) -> MemoryRecordDTO:
    return _pinned.pinned_update(actor=actor, block_id=block_id, **changes)


def pinned_remove(*, actor: _Actor, block_id: _uuid.UUID) -> None:
    _pinned.pinned_remove(actor=actor, block_id=block_id)


def scope_policies(*, actor: _Actor, user_id: _uuid.UUID | None = None) -> list[ScopePolicyDTO]:
    return _policy.scope_policy_list(actor=actor, user_id=user_id)


def scope_policy_set(
    *,
    actor: _Actor,
    scope: str,
    ttl_days: float | None,
    half_life_days: float = 180.0,
    user_id: _uuid.UUID | None = None,
) -> ScopePolicyDTO:
    return _policy.scope_policy_set(
        actor=actor,
        scope=scope,
        ttl_days=ttl_days,
        half_life_days=half_life_days,
        user_id=user_id,
    )


# --- Compression, auto-recording (mx) ----------------------------------------------------
# Compression of chat messages to a token budget (segments that expand to their turns),
# and episodic summaries of sessions.

from lumina.memory.services import compression as _compression  # noqa: E402
from lumina.memory.services import episodes as _episodes  # noqa: E402
from lumina.memory.services.compression import (  # noqa: E402
    CompressionDTO,
    ExpandedDTO,
    SegmentDTO,
)

__all__ += [
    "CompressionDTO",
    "ExpandedDTO",
    "SegmentDTO",
    "context_compress",
    "segment_expand",
    "session_summarize",
]


def context_compress(
    *, actor: _Actor, messages: list[dict], budget: int, **options: _Any
) -> CompressionDTO:
    """Fit chat ``messages`` into ``budget`` tokens. Options: keep_recent, pinned, session,
    memories (add relevant memories), summary ("auto", "llm", "extractive")."""
    return _compression.context_compress(actor=actor, messages=messages, budget=budget, **options)


def segment_expand(*, actor: _Actor, segment_id: _uuid.UUID, recursive: bool = True) -> ExpandedDTO:
    """The original messages a compression segment replaced (nested ones too)."""
    return _compression.segment_expand(actor=actor, segment_id=segment_id, recursive=recursive)


def session_summarize(
    *, actor: _Actor, session_id: str, user_id: _uuid.UUID | None = None, summary: str = "auto"
) -> MemoryRecordDTO:
    """An episodic summary of a session (recursive for long ones), made or updated now."""
    return _episodes.session_summarize(
        actor=actor, session_id=session_id, user_id=user_id, method=summary
    )


# --- Topics and graph (mg) -------------------------------------------------------------

from lumina.memory.services import topics as _topics  # noqa: E402
from lumina.memory.topics_types import (  # noqa: E402
    Graph,
    GraphEdge,
    GraphNode,
    TopicDTO,
    TopicExtraction,
    TopicMemberDTO,
)

__all__ += [
    "Graph",
    "GraphEdge",
    "GraphNode",
    "TopicDTO",
    "TopicExtraction",
    "TopicMemberDTO",
    "graph_get",
    "topic_get",
    "topic_members",
    "topics_extract",
    "topics_list",
]


def topics_extract(
    *, actor: _Actor, scope: str = "user", key: str = "", user_id: _uuid.UUID | None = None
) -> TopicExtraction:
    """Cluster a scope's records (user, agent, session, or a collection by name) into
    topics now, replacing the scope's previous topics."""
    return _topics.topics_extract(actor=actor, scope=scope, key=key, user_id=user_id)


def topics_list(
    *, actor: _Actor, scope: str = "user", key: str = "", user_id: _uuid.UUID | None = None
) -> list[TopicDTO]:
    """A scope's topics, parents first."""
    return _topics.topics_get(actor=actor, scope=scope, key=key, user_id=user_id)


def topic_get(*, actor: _Actor, topic_id: _uuid.UUID) -> TopicDTO:
    return _topics.topic_get(actor=actor, topic_id=topic_id)


def topic_members(*, actor: _Actor, topic_id: _uuid.UUID, limit: int = 100) -> list[TopicMemberDTO]:
    """A topic's records, closest to its centre first."""
    return _topics.topic_members_get(actor=actor, topic_id=topic_id, limit=limit)


def graph_get(*, actor: _Actor, user_id: _uuid.UUID | None = None, **options: _Any) -> Graph:
    """The entity graph. Options: session_id, entity (and its neighbours), min_weight,
    kinds (relation kinds), limit (entities)."""
    return _topics.graph_get(actor=actor, user_id=user_id, **options)
