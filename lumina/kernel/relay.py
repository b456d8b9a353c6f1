"""A background thread that re-dispatches due outbox events (the in-process relay).

With the Celery transport, beat runs ``relay_outbox`` instead; this thread is for
the in-process transport, started by the web process's lifecycle hooks (``relay_start``,
registered by the kernel's app) and by ``manage.py events relay``. The same thread runs
the periodic jobs that contexts register with ``run_periodically`` (Celery beat runs
their tasks in the other mode), so the in-process mode needs no scheduler of its own.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

import structlog
from django.conf import settings
from django.db import close_old_connections

from lumina.kernel import bus

logger = structlog.get_logger(__name__)


@dataclasses.dataclass
class _Job:
    interval: float
    run: Callable[[], object]
    next_at: float = 0.0  # due at the relay's first pass


_jobs: dict[str, _Job] = {}


def run_periodically(name: str, interval: float, job: Callable[[], object]) -> None:
    """Have relay threads also call ``job`` every ``interval`` seconds (at the relay's pace).

    Registering a name again replaces its job. A failing job is logged and tried again
    at its next time.
    """
    _jobs[name] = _Job(interval=interval, run=job)


def run_due_jobs(now: float | None = None) -> list[str]:
    """Run the periodic jobs that are due; return their names."""
    now = time.monotonic() if now is None else now
    ran = []
    for name, job in list(_jobs.items()):
        if job.next_at > now:
            continue
        job.next_at = now + job.interval
        ran.append(name)
        try:
            job.run()
        except Exception:
            logger.exception("periodic job failed", job=name)
    return ran


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
            try:
                run_due_jobs()
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
