"""Memory records' own subscriptions: an import accepted while the embedding model was down
is finished here, retried by the outbox (with backoff) until the model answers."""

from __future__ import annotations

from lumina.kernel.bus import subscribe
from lumina.memory.events.records import RecordsEmbedPending
from lumina.memory.services.records import records_embed_pending


@subscribe(RecordsEmbedPending)
def embed_pending_records(event: RecordsEmbedPending) -> None:
    records_embed_pending(owner_id=event.owner_id, record_ids=event.record_ids)
