"""The two event transports, chosen by ``LUMINA_EVENT_TRANSPORT``."""

from __future__ import annotations

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


class CeleryTransport(Transport):
    """Enqueues one Celery task per event; a worker runs the same handlers."""

    def dispatch(self, event_id: uuid.UUID) -> None:
        from lumina.kernel.tasks import deliver_event

        try:
            deliver_event.apply_async(args=[str(event_id)], retry=False)
        except Exception:
            # Broker unreachable: the outbox row is safe; the relay enqueues it later.
            logger.warning("could not enqueue event", event_id=str(event_id))
