"""Memory records' own subscriptions: an import accepted while the embedding model was down
is finished here, retried by the outbox (with backoff) until the model answers; and the
periodic expiry of memories past their time to live."""

from __future__ import annotations

from lumina.kernel.bus import subscribe
from lumina.kernel.relay import run_periodically
from lumina.memory.events.records import RecordsEmbedPending
from lumina.memory.services.expiry import EXPIRE_INTERVAL_SECONDS, records_expire_due
from lumina.memory.services.records import records_embed_pending


@subscribe(RecordsEmbedPending)
def embed_pending_records(event: RecordsEmbedPending) -> None:
    records_embed_pending(owner_id=event.owner_id, record_ids=event.record_ids)


# In-process mode the relay thread expires memories; with Celery, beat runs
# ``lumina.memory.tasks.expire_memories`` (config/settings.py).
run_periodically("memory.expire", EXPIRE_INTERVAL_SECONDS, records_expire_due)
