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


# --- Compression, auto-recording (mx) ----------------------------------------------------


# --- Topics and graph (mg) -------------------------------------------------------------
