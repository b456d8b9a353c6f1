"""Reports for charts: usage totals, latency percentiles, errors and circuit changes.

Each report answers for an actor: usage, latency and errors show the actor's own requests
unless they hold ``providers.usage.read_all`` (``visibility.py``); circuit changes are
about deployments, not people, and need ``providers.read``. Nothing here reads the raw
ledger: usage reads the daily cost rollups, latency and errors the daily request rollup
(its histograms, ADR 0033).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Sequence

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Q, Sum

from lumina.kernel.models import OutboxEvent
from lumina.providers.events.routing import CircuitClosed, CircuitOpened
from lumina.providers.models.usage import DailyRequests
from lumina.providers.selectors import histograms
from lumina.providers.selectors.costs import CostRow, ReportError, cost_report
from lumina.providers.selectors.visibility import sees_everyones_usage, usage_user_visible
from lumina.providers.types import UsageStatus
from lumina.security.api import Actor, require

# What latency and error reports may be grouped by: columns of the daily request rollup.
LEDGER_GROUPS: dict[str, str] = {
    "day": "day",
    "model": "model",
    "provider": "provider_name",
    "operation": "operation",
    "user": "user_id",
}
ERROR_GROUPS: dict[str, str] = {**LEDGER_GROUPS, "status": "status", "error_code": "error_code"}
ROLLUP_COLUMNS = ("day", "user_id", "provider_name", "model", "operation")
PERCENTILES = (50, 90, 99)
MAX_LEDGER_DAYS = 366


@dataclasses.dataclass(frozen=True)
class LatencyRow:
    """Latency and time-to-first-token percentiles (ms) of one group's requests."""

    keys: dict[str, object]
    requests: int
    latency_ms: dict[int, float | None]  # percentile -> milliseconds
    ttft_ms: dict[int, float | None]  # streams only; None when the group has none


@dataclasses.dataclass(frozen=True)
class ErrorRow:
    """How many of one group's requests did not end ``ok``."""

    keys: dict[str, object]
    errors: int


@dataclasses.dataclass(frozen=True)
class CircuitChange:
    """A deployment's circuit breaker opening or closing."""

    occurred_at: dt.datetime
    state: str  # "open" or "closed"
    deployment_id: str
    provider_name: str
    model: str
    reason: str


def _requests(
    actor: Actor, since: dt.date, until: dt.date, user_id: uuid.UUID | None, per_user: bool
):
    """The daily request rollup rows of the window the actor may see: one user's, or, for
    an actor who sees everyone's, the rows for everyone (one a day and key, however many
    users) unless the report is grouped by user."""
    if until < since:
        raise ReportError("until is before since.", fields={"until": ["Must not be before since."]})
    if (until - since).days > MAX_LEDGER_DAYS:
        raise ReportError(
            "The range is too long.", fields={"until": [f"At most {MAX_LEDGER_DAYS} days."]}
        )
    rows = DailyRequests.objects.filter(day__gte=since, day__lte=until)
    visible = usage_user_visible(actor, user_id)
    if visible is not None:
        rows = rows.filter(everyone=False, user_id=visible)
    elif sees_everyones_usage(actor):
        rows = rows.filter(everyone=not per_user)
    else:
        # An actor with no user (a system actor without the permission) sees nothing.
        rows = rows.none()
    return rows.order_by()


# The buckets of both histograms of each group, summed over the rollup rows: a few dozen
# rows a group, whatever the number of requests (ADR 0033).
_BUCKETS_SQL = """
SELECT {columns} h.ttft, h.bucket::int, sum(h.n::bigint)
FROM ({rows}) AS r
CROSS JOIN LATERAL (
    SELECT false AS ttft, key AS bucket, value AS n FROM jsonb_each_text(r.latency_histogram)
    UNION ALL
    SELECT true, key, value FROM jsonb_each_text(r.ttft_histogram)
) AS h
GROUP BY {columns} h.ttft, h.bucket
"""


def _group_columns(group_by: Sequence[str], groups: dict[str, str]) -> list[str]:
    unknown = [name for name in group_by if name not in groups]
    if unknown:
        raise ReportError(
            f"Unknown group_by {', '.join(map(repr, unknown))}.",
            fields={"group_by": [f"Choose from {', '.join(groups)}."]},
        )
    return [groups[name] for name in dict.fromkeys(group_by)]


def _keys(values: dict, group_by: Sequence[str], groups: dict[str, str]) -> dict[str, object]:
    return {name: values[groups[name]] for name in dict.fromkeys(group_by)}


def usage_totals(
    *,
    actor: Actor,
    since: dt.date,
    until: dt.date,
    group_by: Sequence[str] = (),
    user_id: uuid.UUID | None = None,
) -> list[CostRow]:
    """Cost report rows the actor may see: their own unless they see everyone's."""
    visible = usage_user_visible(actor, user_id)
    if visible is None and not sees_everyones_usage(actor):
        return []  # an actor with no user id and no right to everyone's
    return cost_report(since=since, until=until, group_by=group_by, user_id=visible)


def latency_percentiles(
    *,
    actor: Actor,
    since: dt.date,
    until: dt.date,
    group_by: Sequence[str] = (),
    user_id: uuid.UUID | None = None,
) -> list[LatencyRow]:
    """p50/p90/p99 of latency and TTFT of the requests that ended ``ok``, estimated from the
    daily histograms (within ``histograms.MAX_RELATIVE_ERROR`` of the exact values)."""
    columns = _group_columns(group_by, LEDGER_GROUPS)
    per_user = "user" in group_by
    rows = _requests(actor, since, until, user_id, per_user).filter(status=UsageStatus.OK)
    selected = rows.values(*ROLLUP_COLUMNS, "latency_histogram", "ttft_histogram")
    try:
        inner, params = selected.query.sql_with_params()
    except EmptyResultSet:
        return []  # rows.none(): the actor may see nobody's
    listed = "".join(f"r.{column}, " for column in columns)
    groups: dict[tuple, tuple[dict[int, int], dict[int, int]]] = {}
    with connection.cursor() as cursor:
        cursor.execute(_BUCKETS_SQL.format(columns=listed, rows=inner), params)
        for *keys, ttft, bucket, count in cursor.fetchall():
            counts = groups.setdefault(tuple(keys), ({}, {}))
            counts[1 if ttft else 0][bucket] = int(count)
    fractions = [p / 100 for p in PERCENTILES]
    return [
        LatencyRow(
            keys={name: keys[i] for i, name in enumerate(dict.fromkeys(group_by))},
            requests=sum(latency.values()),
            latency_ms=_by_percentile(histograms.percentiles(latency, fractions)),
            ttft_ms=_by_percentile(histograms.percentiles(ttft, fractions)),
        )
        for keys, (latency, ttft) in sorted(groups.items(), key=lambda item: _sortable(item[0]))
    ]


def _sortable(keys: tuple) -> tuple:
    # NULL user ids sort last, as PostgreSQL sorts them.
    return tuple((value is None, value if value is not None else "") for value in keys)


def _by_percentile(found: list[float | None] | None) -> dict[int, float | None]:
    # NULL when the group has no value at all (no streams: no TTFT).
    return dict(zip(PERCENTILES, found or [None] * len(PERCENTILES), strict=True))


def error_counts(
    *,
    actor: Actor,
    since: dt.date,
    until: dt.date,
    group_by: Sequence[str] = ("day",),
    user_id: uuid.UUID | None = None,
) -> list[ErrorRow]:
    """Requests that ended in anything but ``ok``, counted per group (from the rollup)."""
    columns = _group_columns(group_by, ERROR_GROUPS)
    per_user = "user" in group_by
    rows = _requests(actor, since, until, user_id, per_user).filter(~Q(status=UsageStatus.OK))
    if not columns:
        total = rows.aggregate(n=Sum("requests"))["n"] or 0
        return [ErrorRow(keys={}, errors=total)] if total else []
    found = rows.values(*columns).annotate(n=Sum("requests")).order_by(*columns)
    return [
        ErrorRow(keys=_keys(values, group_by, ERROR_GROUPS), errors=values["n"]) for values in found
    ]


def circuit_changes(*, actor: Actor, since: dt.date, until: dt.date) -> list[CircuitChange]:
    """Circuit breakers opening and closing, oldest first, from the events published."""
    require(actor, "providers.read")
    start = dt.datetime.combine(since, dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    events = OutboxEvent.objects.filter(
        name__in=(CircuitOpened.name, CircuitClosed.name),
        occurred_at__gte=start,
        occurred_at__lt=end,
    ).order_by("occurred_at", "id")
    return [
        CircuitChange(
            occurred_at=event.occurred_at,
            state="open" if event.name == CircuitOpened.name else "closed",
            deployment_id=str(event.payload.get("deployment_id", "")),
            provider_name=str(event.payload.get("provider_name", "")),
            model=str(event.payload.get("model", "")),
            reason=str(event.payload.get("reason", "")),
        )
        for event in events[:10_000]
    ]
