"""The two event transports, chosen by ``LUMINA_EVENT_TRANSPORT``."""

from __future__ import annotations

import time
import uuid

import structlog

from lumina.kernel.bus import Transport, deliver

logger = structlog.get_logger(__name__)


class InProcessTransport(Transport):
    """Runs the handlers right after commit, in the publishing process."""

    def dispatch(self, event_id: uuid.UUID) -> None:
        try:
            deliver(event_id)
        except Exception:
            # The row stays pending; the relay retries it. Never fail the caller's commit.
            logger.exception("in-process delivery failed", event_id=str(event_id))


# After a failed enqueue, commit-time dispatch leaves events to the relay for this long,
# so a broker outage costs one connection timeout, not one per event.
BROKER_BACKOFF_SECONDS = 10.0


class CeleryTransport(Transport):
    """Enqueues one Celery task per event; a worker runs the same handlers."""

    def __init__(self) -> None:
        self._broker_down_until = 0.0

    def dispatch(self, event_id: uuid.UUID) -> None:
        from lumina.kernel.tasks import deliver_event

        if time.monotonic() < self._broker_down_until:
            return  # the outbox row is safe; the relay enqueues it once the broker is back
        try:
            deliver_event.apply_async(args=[str(event_id)], retry=False)
        except Exception:
            # Broker unreachable: the outbox row is safe; the relay enqueues it later.
            self._broker_down_until = time.monotonic() + BROKER_BACKOFF_SECONDS
            logger.warning("could not enqueue event", event_id=str(event_id))
