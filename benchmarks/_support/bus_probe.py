"""The event and handler that ``benchmarks/event_bus.py`` publishes and delivers.

A module of its own so the Celery worker the benchmark starts can import it
(``celery worker --include benchmarks._support.bus_probe``) and register the
same event class and handler as the publishing process.
"""

from __future__ import annotations

import dataclasses

from lumina.kernel.bus import subscribe
from lumina.kernel.events import DomainEvent


@dataclasses.dataclass(frozen=True, kw_only=True)
class BenchProbe(DomainEvent):
    name = "bench.Probe"
    version = 1

    seq: int


deliveries = 0


@subscribe(BenchProbe)
def on_probe(event: BenchProbe) -> None:
    """A trivial handler: counts what it was given, in this process."""
    global deliveries
    deliveries += 1


class HeldTransport:
    """Keeps dispatched ids instead of delivering them, so publishing is timed alone."""

    held: list = []

    def dispatch(self, event_ids) -> None:
        HeldTransport.held.extend(event_ids)
