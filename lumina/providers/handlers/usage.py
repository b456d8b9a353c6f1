"""The cost projection: each batch of ``UsageRecorded`` adds to its days' rollup rows (cost,
and the latency histograms of ADR 0033).

A batch handler: the bus hands it every pending event of a delivery batch at once, and
one upsert applies them all. The bus records each (event, handler) pair it has applied,
so a redelivered event is never counted twice; ``costs_rebuild`` marks events it has
already counted the same way. Should a batch fail, the bus calls the handler again once
per event, so one bad event stays pending alone.
"""

from __future__ import annotations

from lumina.kernel.bus import subscribe
from lumina.providers.events.usage import UsageRecorded
from lumina.providers.services.costs import daily_requests_add, daily_usage_add


@subscribe(UsageRecorded, batch=True)
def project_daily_usage(events: list[UsageRecorded]) -> None:
    entries = [event.to_entry() for event in events]
    daily_usage_add(entries=entries)
    daily_requests_add(entries=entries)
