"""Values that topics and the entity graph hand across ``memory.api`` and to the HTTP layer.

Frozen dataclasses, never models.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid


@dataclasses.dataclass(frozen=True)
class TopicDTO:
    id: uuid.UUID
    owner_id: uuid.UUID
    scope: str
    scope_key: str
    parent_id: uuid.UUID | None
    level: int
    label: str
    keywords: tuple[str, ...]
    keyword_weights: tuple[float, ...]
    size: int
    children: tuple[uuid.UUID, ...]
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class TopicMemberDTO:
    record_id: str  # a memory record's UUID, or a collection record's external id
    text: str
    similarity: float
    occurred_at: dt.datetime | None


@dataclasses.dataclass(frozen=True)
class TopicExtraction:
    owner_id: uuid.UUID
    scope: str
    scope_key: str
    record_count: int
    silhouette: float | None
    topics: tuple[TopicDTO, ...]


@dataclasses.dataclass(frozen=True)
class GraphNode:
    id: uuid.UUID
    name: str
    kind: str
    mentions: int
    first_seen_at: dt.datetime | None
    last_seen_at: dt.datetime | None


@dataclasses.dataclass(frozen=True)
class GraphEdge:
    id: uuid.UUID
    source: uuid.UUID
    target: uuid.UUID
    kind: str
    weight: float
    extracted_by: str
    provenance: tuple[uuid.UUID, ...]  # records the relation was read from (newest first)


@dataclasses.dataclass(frozen=True)
class Graph:
    owner_id: uuid.UUID
    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]
    truncated: bool
