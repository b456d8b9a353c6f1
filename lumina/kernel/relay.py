"""A background thread that re-dispatches due outbox events (the in-process relay).

With the Celery transport, beat runs ``relay_outbox`` instead; this thread is for
the in-process transport, started by the ASGI server's lifespan and by
``manage.py events relay``.
"""

from __future__ import annotations

import threading

import structlog
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
