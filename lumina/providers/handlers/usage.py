"""The cost projection: every ``UsageRecorded`` adds to its day's rollup row.

The bus records each (event, handler) pair it has applied, so a redelivered event is
never counted twice; ``costs_rebuild`` marks events it has already counted the same way.
"""

from __future__ import annotations

from lumina.kernel.bus import subscribe
from lumina.providers.events.usage import UsageRecorded
from lumina.providers.services.costs import daily_usage_apply


@subscribe(UsageRecorded)
def project_daily_usage(event: UsageRecorded) -> None:
    daily_usage_apply(entry=event.to_entry())
