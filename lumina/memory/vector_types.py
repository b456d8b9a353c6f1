"""Values the vector area returns through ``memory.api`` and REST: frozen, no models."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class CollectionInfo:
    id: uuid.UUID
    name: str
    owner_id: uuid.UUID
    description: str
    embedding_model: str
    dimension: int
    distance: str
    hnsw_m: int
    hnsw_ef_construction: int
    default_ef_search: int
    record_count: int
    metadata_fields: tuple[str, ...]
    reembedding_to: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    index_type: str = "halfvec"  # what the HNSW graph stores: halfvec or vector


@dataclasses.dataclass(frozen=True)
class VectorItem:
    id: str
    text: str
    metadata: Mapping[str, Any]
    vector: tuple[float, ...] | None
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class UpsertResult:
    collection: str
    inserted: int
    updated: int
    ids: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class RetrieverScore:
    """One retriever's view of a hit: its 1-based rank there and its own score.

    ``vector``: similarity (cosine: 1 - distance; inner product: the product; L2: minus
    the distance) and ``distance``; ``text``: PostgreSQL's ``ts_rank_cd``.
    """

    rank: int
    score: float
    distance: float | None = None


@dataclasses.dataclass(frozen=True)
class VectorHit:
    id: str
    text: str
    metadata: Mapping[str, Any]
    score: float
    retrievers: Mapping[str, RetrieverScore]
    rrf: float | None = None
    mmr: float | None = None


@dataclasses.dataclass(frozen=True)
class SearchResult:
    collection: str
    mode: str
    hits: tuple[VectorHit, ...]
    # "hnsw", "exact" (a selective filter, or HNSW found fewer than k), or "none".
    vector_plan: str = "none"
    ef_search: int | None = None
