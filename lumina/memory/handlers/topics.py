"""The entity graph and topics follow memory events.

``MemoryStored``: the new records are read into the entity graph, and those that already
have embeddings join the nearest topic of their scopes. ``MemoryUpdated`` with a new
embedding or text: the same for those records (both steps are idempotent). Batch
handlers, so an import of thousands of turns costs one pass per delivery batch.
"""

from __future__ import annotations

from lumina.kernel.bus import subscribe
from lumina.memory.events.records import MemoryStored, MemoryUpdated
from lumina.memory.services.graph import graph_index_records
from lumina.memory.services.topics import topics_assign


@subscribe(MemoryStored, batch=True)
def graph_and_topics_on_stored(events: list[MemoryStored]) -> None:
    unindexed = [r for event in events if not event.graph_indexed for r in event.record_ids]
    if unindexed:
        graph_index_records(record_ids=unindexed)
    embedded = [r for event in events if event.embedded for r in event.record_ids]
    if embedded:
        topics_assign(record_ids=embedded, owner_ids={event.owner_id for event in events})


@subscribe(MemoryUpdated, batch=True)
def graph_and_topics_on_updated(events: list[MemoryUpdated]) -> None:
    reread = [r for e in events if "text" in e.changed for r in e.record_ids]
    if reread:
        graph_index_records(record_ids=reread)
    embedded = [r for e in events if {"embedding", "text"} & set(e.changed) for r in e.record_ids]
    if embedded:
        topics_assign(record_ids=embedded, owner_ids={e.owner_id for e in events})
