"""Execution counts for charts: runs per day, tool or status, as the actor may see them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from django.db.models import Avg, Count
from django.db.models.functions import TruncDate

from lumina.kernel.errors import ApplicationError
from lumina.security.api import Actor, require
from lumina.tools.selectors.executions import visible_executions

GROUPS: dict[str, str] = {"day": "day", "tool": "tool_name", "status": "status"}
MAX_DAYS = 366


@dataclasses.dataclass(frozen=True)
class ExecutionCountRow:
    """How many runs one group had, and their mean duration (ms; None if none finished)."""

    keys: dict[str, object]
    executions: int
    mean_duration_ms: float | None


def execution_counts(
    *,
    actor: Actor,
    since: dt.date,
    until: dt.date,
    group_by: Sequence[str] = ("day",),
) -> list[ExecutionCountRow]:
    """Runs in ``since``…``until`` (UTC days, both included): the actor's own, or
    everyone's with ``tools.executions.read_all``; needs ``tools.read``."""
    unknown = [name for name in group_by if name not in GROUPS]
    if unknown:
        raise ApplicationError(
            f"Unknown group_by {', '.join(map(repr, unknown))}.",
            fields={"group_by": [f"Choose from {', '.join(GROUPS)}."]},
            code="invalid",
        )
    if until < since or (until - since).days > MAX_DAYS:
        raise ApplicationError(
            "until must be on or after since, at most a year later.",
            fields={"until": [f"On or after since, within {MAX_DAYS} days."]},
            code="invalid",
        )
    require(actor, "tools.read")
    start = dt.datetime.combine(since, dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    rows = visible_executions(actor).filter(created_at__gte=start, created_at__lt=end)
    rows = rows.annotate(day=TruncDate("created_at", tzinfo=dt.UTC)).order_by()
    names = list(dict.fromkeys(group_by))
    columns = [GROUPS[name] for name in names]
    aggregates = {"n": Count("id"), "mean": Avg("duration_ms")}
    if columns:
        found = list(rows.values(*columns).annotate(**aggregates).order_by(*columns))
    else:
        totals = rows.aggregate(**aggregates)
        found = [totals] if totals["n"] else []
    return [
        ExecutionCountRow(
            keys={name: values[GROUPS[name]] for name in names},
            executions=values["n"],
            mean_duration_ms=values["mean"],
        )
        for values in found
    ]
