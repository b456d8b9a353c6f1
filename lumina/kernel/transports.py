"""The two event transports, chosen by name with ``LUMINA_EVENT_TRANSPORT`` (``TRANSPORTS``)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import structlog
from django.conf import settings
from django.utils.module_loading import import_string

from lumina.kernel.bus import Transport, deliver_many

logger = structlog.get_logger(__name__)

# Events per delivery transaction (in-process) or per task (Celery): large enough to
# share one commit, small enough that one batch never holds row locks for long.
BATCH_SIZE = 100
# After a failed enqueue, commit-time dispatch leaves events to the relay for this long,
# so a broker outage costs one connection timeout, not one per event.
BROKER_BACKOFF_SECONDS = 10.0


def _batches(event_ids: Sequence[uuid.UUID]):
    for start in range(0, len(event_ids), BATCH_SIZE):
        yield event_ids[start : start + BATCH_SIZE]


class InProcessTransport(Transport):
    """Runs the handlers right after commit, in the publishing process."""

    relays_in_process = True  # due retries are this process's to re-dispatch

    def dispatch(self, event_ids: Sequence[uuid.UUID]) -> None:
        for batch in _batches(event_ids):
            try:
                deliver_many(batch)
            except Exception:
                # The rows stay pending; the relay retries them. Never fail the caller.
                logger.exception("in-process delivery failed", events=len(batch))


class CeleryTransport(Transport):
    """Enqueues one Celery task per batch of events; workers run the same handlers."""

    relays_in_process = False  # Celery beat runs the relay

    def __init__(self) -> None:
        # The configured Celery app must exist before a task is sent, or Celery's default
        # app (no broker settings) would take it.
        import_string(settings.LUMINA_CELERY_APP)
        self._broker_down_until = 0.0

    def dispatch(self, event_ids: Sequence[uuid.UUID]) -> None:
        from lumina.kernel.tasks import deliver_events

        if time.monotonic() < self._broker_down_until:
            return  # the outbox rows are safe; the relay enqueues them once the broker is back
        for batch in _batches(event_ids):
            try:
                deliver_events.apply_async(args=[[str(i) for i in batch]], retry=False)
            except Exception:
                self._broker_down_until = time.monotonic() + BROKER_BACKOFF_SECONDS
                logger.warning("could not enqueue events", events=len(batch))
                return


TRANSPORTS: dict[str, type[Transport]] = {
    "inprocess": InProcessTransport,
    "celery": CeleryTransport,
}
