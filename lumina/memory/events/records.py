"""Events about memory records. They carry ids and scopes, never the remembered text.

A write that stores many records (an import) publishes one ``MemoryStored`` per layer and
batch of at most ``STORED_BATCH`` records, so handlers see whole batches.
"""

from __future__ import annotations

import dataclasses
import uuid

from lumina.kernel.events import Command, IntegrationEvent

__all__ = [
    "STORED_BATCH",
    "MemoryExpired",
    "MemoryStored",
    "MemorySuperseded",
    "MemoryUpdated",
    "RecordsEmbedPending",
]

STORED_BATCH = 500


@dataclasses.dataclass(frozen=True, kw_only=True)
class MemoryStored(IntegrationEvent):
    """New records of one layer: turns recorded or imported, facts added, blocks pinned.

    ``embedded`` is false when the records wait for their embeddings (the embedding model
    was down); a ``MemoryUpdated`` with ``changed=("embedding",)`` follows once they have
    them.
    """

    name = "memory.MemoryStored"
    version = 1

    owner_id: uuid.UUID
    layer: str
    record_ids: tuple[uuid.UUID, ...]
    session_ids: tuple[str, ...] = ()
    embedded: bool = True
    actor_id: uuid.UUID | None = None
    # The entity graph already holds them: an import indexes its turns as it writes them.
    graph_indexed: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class MemoryUpdated(IntegrationEvent):
    """Records changed in place: ``changed`` names what (``embedding``, ``text``, ``provenance``,
    ``importance``, ``metadata``)."""

    name = "memory.MemoryUpdated"
    version = 1

    owner_id: uuid.UUID
    record_ids: tuple[uuid.UUID, ...]
    changed: tuple[str, ...] = ()
    actor_id: uuid.UUID | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class MemorySuperseded(IntegrationEvent):
    """A fact (or pinned block) was replaced: the old one is closed, never deleted.

    ``decision`` is ``supersede`` (it no longer holds: ``valid_to`` is set) or ``update``
    (it was refined: still valid, but we now believe the new wording).
    """

    name = "memory.MemorySuperseded"
    version = 1

    owner_id: uuid.UUID
    record_id: uuid.UUID
    superseded_by: uuid.UUID
    decision: str
    actor_id: uuid.UUID | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class MemoryExpired(IntegrationEvent):
    """Records reached their time to live: out of search, kept for audit until purged."""

    name = "memory.MemoryExpired"
    version = 1

    owner_id: uuid.UUID
    record_ids: tuple[uuid.UUID, ...]


@dataclasses.dataclass(frozen=True, kw_only=True)
class RecordsEmbedPending(Command):
    """Embed these stored records and finish their import (fact extraction), retried by the
    outbox until the embedding model answers."""

    name = "memory.RecordsEmbedPending"
    version = 1

    owner_id: uuid.UUID
    record_ids: tuple[uuid.UUID, ...]
