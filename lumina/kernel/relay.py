"""A background thread that re-dispatches due outbox events (the in-process relay).

With the Celery transport, beat runs ``relay_outbox`` instead; this thread is for
the in-process transport, started by the web process's lifecycle hooks (``relay_start``,
registered by the kernel's app) and by ``manage.py events relay``.
"""

from __future__ import annotations

import threading

import structlog
from django.conf import settings
from django.db import close_old_connections

from lumina.kernel import bus

logger = structlog.get_logger(__name__)


class OutboxRelay(threading.Thread):
    def __init__(self, *, interval: float) -> None:
        super().__init__(name="outbox-relay", daemon=True)
        self.interval = interval
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                count = bus.relay()
                if count:
                    logger.info("outbox relay dispatched events", count=count)
            except Exception:
                logger.exception("outbox relay pass failed")
            finally:
                close_old_connections()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self.join(timeout)


_running: OutboxRelay | None = None


def relay_start() -> None:
    """Start this process's relay thread if the configured transport needs one (lifespan)."""
    global _running
    if _running is None and getattr(bus.transport(), "relays_in_process", False):
        _running = OutboxRelay(interval=settings.LUMINA_OUTBOX_RELAY_INTERVAL)
        _running.start()


def relay_stop() -> None:
    global _running
    relay, _running = _running, None
    if relay is not None:
        relay.stop()


def relay_running() -> bool:
    return _running is not None and _running.is_alive()
