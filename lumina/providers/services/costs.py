"""The cost read models: the ``UsageRecorded`` projection into daily rollups, and its rebuild.

``daily_usage_add`` adds a batch of ledger entries to their days' cost rows with one upsert,
``daily_requests_add`` to their days' latency histograms and outcomes (ADR 0033).
``costs_rebuild`` throws both rollups away and recomputes them from the raw ledger, each in
one ``INSERT … SELECT … GROUP BY``, so the read models can always be replayed from the stream.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

import structlog
from django.db import connection, transaction

from lumina.kernel.models import OutboxEvent, ProcessedEvent
from lumina.providers.events.usage import UsageRecorded
from lumina.providers.models.usage import (
    DAILY_REQUESTS_KEY,
    DAILY_USAGE_KEY,
    DailyRequests,
    DailyUsage,
    UsageRecord,
)
from lumina.providers.selectors.histograms import BOUNDS, bucket_of
from lumina.providers.types import UsageEntry, UsageStatus

logger = structlog.get_logger(__name__)

# The bus's id for the projection handler (module + qualified name): the rebuild marks
# not-yet-delivered events as applied under this id.
DAILY_USAGE_PROJECTION = "lumina.providers.handlers.usage.project_daily_usage"

_DAILY = DailyUsage._meta.db_table
_REQUESTS = DailyRequests._meta.db_table
_LEDGER = UsageRecord._meta.db_table
_SUMS = (
    "requests", "errors", "estimated", "input_tokens", "cached_input_tokens",
    "cache_write_tokens", "output_tokens", "reasoning_tokens", "cost",
)  # fmt: skip
_ROLLUP_COLUMNS = DAILY_USAGE_KEY + _SUMS
_COLUMNS = ", ".join(_ROLLUP_COLUMNS)


_REPLAY = f"""
INSERT INTO {_DAILY} ({_COLUMNS})
SELECT (occurred_at AT TIME ZONE 'UTC')::date, user_id, token_id, provider_id, provider_name,
       model, operation, count(*), count(*) FILTER (WHERE status <> %s),
       count(*) FILTER (WHERE estimated), sum(input_tokens), sum(cached_input_tokens),
       sum(cache_write_tokens), sum(output_tokens), sum(reasoning_tokens), sum(cost)
FROM {_LEDGER}
GROUP BY 1, 2, 3, 4, 5, 6, 7
"""  # noqa: S608

# Events committed with their ledger rows but not yet projected: the rebuild has counted
# their rows, so the projection must not add them a second time.
_MARK_PENDING = f"""
INSERT INTO {ProcessedEvent._meta.db_table} (event_id, handler)
SELECT id, %s FROM {OutboxEvent._meta.db_table}
WHERE name = %s AND version = %s AND status <> %s
ON CONFLICT DO NOTHING
"""  # noqa: S608


# Each histogram is a sparse JSON object, {"<bucket>": count} (ADR 0033).
_REQUESTS_COLUMNS = ", ".join(DAILY_REQUESTS_KEY)
# Each request counts twice: in its user's row and in the day's row for everyone.
_REQUESTS_REPLAY = f"""
WITH counted AS (
    SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day,
           CASE WHEN e.everyone THEN NULL ELSE user_id END AS user_id, e.everyone,
           provider_name, model, operation, status, error_code, false AS ttft,
           width_bucket(latency_ms, %(bounds)s::float8[]) AS bucket, count(*) AS n
    FROM {_LEDGER} CROSS JOIN (VALUES (false), (true)) AS e(everyone)
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
    UNION ALL
    SELECT (occurred_at AT TIME ZONE 'UTC')::date,
           CASE WHEN e.everyone THEN NULL ELSE user_id END, e.everyone,
           provider_name, model, operation, status, error_code, true,
           width_bucket(ttft_ms, %(bounds)s::float8[]), count(*)
    FROM {_LEDGER} CROSS JOIN (VALUES (false), (true)) AS e(everyone)
    WHERE ttft_ms IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
)
INSERT INTO {_REQUESTS} ({_REQUESTS_COLUMNS}, requests, latency_histogram, ttft_histogram)
SELECT {_REQUESTS_COLUMNS}, sum(n) FILTER (WHERE NOT ttft),
       coalesce(jsonb_object_agg(bucket::text, n) FILTER (WHERE NOT ttft), '{{}}'),
       coalesce(jsonb_object_agg(bucket::text, n) FILTER (WHERE ttft), '{{}}')
FROM counted GROUP BY {_REQUESTS_COLUMNS}
"""  # noqa: S608

# Adding two histograms: the counts of each bucket either has, summed.
_ADD = """coalesce((SELECT jsonb_object_agg(key, total) FROM (
    SELECT key, sum(value::bigint) AS total FROM (
        SELECT * FROM jsonb_each_text({table}.{column})
        UNION ALL SELECT * FROM jsonb_each_text(EXCLUDED.{column})) AS both_ GROUP BY key
    ) AS summed), '{{}}')"""
_REQUESTS_UPSERT_HEAD = (
    f"INSERT INTO {_REQUESTS} ({_REQUESTS_COLUMNS}, requests, latency_histogram, ttft_histogram)"  # noqa: S608
    " VALUES "
)
_REQUESTS_UPSERT_ROW = (
    f"({', '.join(['%s'] * (len(DAILY_REQUESTS_KEY) + 1))}, %s::jsonb, %s::jsonb)"
)
_REQUESTS_UPSERT_TAIL = (
    " ON CONFLICT ON CONSTRAINT daily_requests_key DO UPDATE SET"
    f" requests = {_REQUESTS}.requests + EXCLUDED.requests,"
    f" latency_histogram = {_ADD.format(table=_REQUESTS, column='latency_histogram')},"
    f" ttft_histogram = {_ADD.format(table=_REQUESTS, column='ttft_histogram')}"
)


@dataclasses.dataclass(frozen=True)
class RebuildReport:
    rows: int  # daily rollup rows written
    requests: int  # ledger records replayed
    cost: Decimal
    rows_before: int
    pending_events: int  # events the rebuild counted before the projection got to them
    seconds: float


_UPSERT_HEAD = f"INSERT INTO {_DAILY} ({_COLUMNS}) VALUES "  # noqa: S608
_UPSERT_ROW = f"({', '.join(['%s'] * len(_ROLLUP_COLUMNS))})"
_UPSERT_TAIL = " ON CONFLICT ON CONSTRAINT daily_usage_key DO UPDATE SET " + ", ".join(
    f"{name} = {_DAILY}.{name} + EXCLUDED.{name}" for name in _SUMS
)
# The ledger's precision: each cost is rounded as its ledger row stores it before it is
# summed, so the rollups equal what ``costs_rebuild`` sums from the ledger.
_COST_STEP = Decimal(1).scaleb(-UsageRecord._meta.get_field("cost").decimal_places)


def daily_usage_add(*, entries: Sequence[UsageEntry]) -> int:
    """Add ledger entries to their days' rollup rows with one upsert; return the rows touched.

    The entries are summed per rollup key first: one ``INSERT … ON CONFLICT DO UPDATE``
    cannot touch the same row twice.
    """
    totals: dict[tuple, list] = {}
    for entry in entries:
        usage = entry.usage
        key = (
            entry.occurred_at.astimezone(dt.UTC).date(),
            entry.user_id,
            entry.token_id,
            entry.provider_id,
            entry.provider_name,
            entry.model,
            entry.operation,
        )
        sums = totals.get(key)
        if sums is None:
            sums = totals[key] = [0, 0, 0, 0, 0, 0, 0, 0, Decimal(0)]
        sums[0] += 1
        sums[1] += UsageStatus(entry.status) is not UsageStatus.OK
        sums[2] += usage.estimated
        sums[3] += usage.input_tokens
        sums[4] += usage.cached_input_tokens
        sums[5] += usage.cache_write_tokens
        sums[6] += usage.output_tokens
        sums[7] += usage.reasoning_tokens
        sums[8] += Decimal(entry.cost).quantize(_COST_STEP, rounding=ROUND_HALF_UP)
    if not totals:
        return 0
    sql = _UPSERT_HEAD + ", ".join([_UPSERT_ROW] * len(totals)) + _UPSERT_TAIL
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for key, sums in totals.items() for value in (*key, *sums)])
    return len(totals)


def daily_requests_add(*, entries: Sequence[UsageEntry]) -> int:
    """Count ledger entries into their days' latency histograms with one upsert; return the
    rows touched (entries are summed per rollup key first, as in ``daily_usage_add``)."""
    totals: dict[tuple, tuple[Counter[int], Counter[int]]] = {}
    for entry in entries:
        day = entry.occurred_at.astimezone(dt.UTC).date()
        rest = (
            entry.provider_name,
            entry.model,
            entry.operation,
            UsageStatus(entry.status).value,
            entry.error_code,
        )
        # The user's row, and the day's row for everyone.
        for key in ((day, entry.user_id, False, *rest), (day, None, True, *rest)):
            latency, ttft = totals.setdefault(key, (Counter(), Counter()))
            latency[bucket_of(entry.latency_ms)] += 1
            if entry.ttft_ms is not None:
                ttft[bucket_of(entry.ttft_ms)] += 1
    if not totals:
        return 0
    sql = (
        _REQUESTS_UPSERT_HEAD
        + ", ".join([_REQUESTS_UPSERT_ROW] * len(totals))
        + _REQUESTS_UPSERT_TAIL
    )
    values = [
        value
        for key, (latency, ttft) in totals.items()
        for value in (*key, latency.total(), json.dumps(latency), json.dumps(ttft))
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
    return len(totals)


def costs_rebuild() -> RebuildReport:
    """Recompute every daily rollup from the raw ledger, in one transaction.

    The rollup table is locked first and the snapshot taken after (repeatable read), so
    a projection running at the same moment either finished before (and its rows are
    counted) or waits, and then finds its event already marked as applied.
    """
    started = time.perf_counter()
    outermost = not connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        if outermost:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cursor.execute(f"LOCK TABLE {_DAILY}, {_REQUESTS} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(f"SELECT count(*) FROM {_DAILY}")  # noqa: S608
        rows_before = cursor.fetchone()[0]
        cursor.execute(f"TRUNCATE {_DAILY}")
        cursor.execute(_REPLAY, [UsageStatus.OK.value])
        rows = cursor.rowcount
        cursor.execute(f"TRUNCATE {_REQUESTS}")
        cursor.execute(_REQUESTS_REPLAY, {"bounds": list(BOUNDS)})
        cursor.execute(
            _MARK_PENDING,
            [
                DAILY_USAGE_PROJECTION,
                UsageRecorded.name,
                UsageRecorded.version,
                OutboxEvent.Status.DELIVERED,
            ],
        )
        pending = cursor.rowcount
        cursor.execute(f"SELECT coalesce(sum(requests), 0), coalesce(sum(cost), 0) FROM {_DAILY}")  # noqa: S608
        requests, cost = cursor.fetchone()
    report = RebuildReport(
        rows=rows,
        requests=int(requests),
        cost=Decimal(cost),
        rows_before=rows_before,
        pending_events=pending,
        seconds=time.perf_counter() - started,
    )
    logger.info("cost rollups rebuilt", **dataclasses.asdict(report) | {"cost": str(cost)})
    return report
