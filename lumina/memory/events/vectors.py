"""Events about vector collections. They carry ids and counts, never texts or vectors."""

from __future__ import annotations

import dataclasses
import uuid

from lumina.kernel.events import IntegrationEvent

__all__ = ["CollectionReembedded", "VectorStored", "VectorsDeleted"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class VectorStored(IntegrationEvent):
    """Records of a collection were written (one event per upsert batch)."""

    name = "memory.VectorStored"
    version = 1

    collection_id: uuid.UUID
    owner_id: uuid.UUID
    record_ids: tuple[str, ...]
    inserted: int
    updated: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class VectorsDeleted(IntegrationEvent):
    name = "memory.VectorsDeleted"
    version = 1

    collection_id: uuid.UUID
    owner_id: uuid.UUID
    count: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class CollectionReembedded(IntegrationEvent):
    """Searches now read vectors of ``embedding_model`` (``dimension`` wide)."""

    name = "memory.CollectionReembedded"
    version = 1

    collection_id: uuid.UUID
    owner_id: uuid.UUID
    embedding_model: str
    dimension: int
