"""The daily request rollup (ADR 0033): latency histograms kept by the projection, rebuilt from
the ledger to the same counts, and percentiles read from them within the stated bound."""

from __future__ import annotations

import datetime as dt
import importlib
import random
from decimal import Decimal

import pytest
from django.db import connection

from lumina.kernel import bus
from lumina.providers.models.usage import DailyRequests
from lumina.providers.selectors import histograms
from lumina.providers.selectors.reports import error_counts, latency_percentiles
from lumina.providers.services.costs import costs_rebuild
from lumina.providers.services.usage import usage_flush, usage_submit
from lumina.providers.types import UsageStatus
from lumina.security.api import Actor
from tests.providers import usage_support
from tests.providers.usage_support import ALICE, BOB, entry

ledger = usage_support.ledger

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ledger")]

DAY1 = dt.datetime(2026, 3, 30, 12, tzinfo=dt.UTC)
DAY2 = dt.datetime(2026, 3, 31, 12, tzinfo=dt.UTC)
EVERYONE = Actor.system("tests")  # a system actor may read everyone's usage


def _write(entries, capture) -> None:
    for item in entries:
        usage_submit(item)
    with capture(execute=True):
        usage_flush()


def _rollup() -> list[tuple]:
    columns = [f.name for f in DailyRequests._meta.fields if f.name != "id"]
    return sorted(DailyRequests.objects.values_list(*columns), key=lambda row: tuple(map(str, row)))


def _exact(values: list[float], fraction: float) -> float:
    """PostgreSQL's percentile_cont."""
    ordered = sorted(values)
    rank = fraction * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (rank - low) * (ordered[high] - ordered[low])


def test_python_and_postgresql_put_every_bound_in_the_same_bucket():
    edges = [0.0, 0.5, 1.0, 2.0**20, 2.0**21, 1e9]
    for bound in histograms.BOUNDS[::7]:
        edges += [bound, bound * (1 - 1e-12), bound * (1 + 1e-12)]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT width_bucket(v, %s::float8[]) FROM unnest(%s::float8[]) AS v",
            [list(histograms.BOUNDS), edges],
        )
        placed = [row[0] for row in cursor.fetchall()]
    assert placed == [histograms.bucket_of(value) for value in edges]
    assert histograms.bucket_of(0.5) == 0
    assert histograms.bucket_of(2**21) == histograms.BUCKETS - 1


def test_percentiles_from_the_histogram_stay_within_the_stated_error():
    rng = random.Random(33)  # noqa: S311 (seeded test data, not a secret)
    for sigma in (0.1, 0.6, 1.5):
        values = [rng.lognormvariate(6.0, sigma) for _ in range(2_000)]
        counts: dict[int, int] = {}
        for value in values:
            counts[histograms.bucket_of(value)] = counts.get(histograms.bucket_of(value), 0) + 1
        fractions = [0.01, 0.5, 0.9, 0.99, 1.0]
        for fraction, estimate in zip(
            fractions, histograms.percentiles(counts, fractions), strict=True
        ):
            exact = _exact(values, fraction)
            assert abs(estimate - exact) <= histograms.MAX_RELATIVE_ERROR * exact, (
                sigma,
                fraction,
            )
    assert histograms.percentiles({}, [0.5]) == [None]


def test_the_projection_counts_each_request_in_its_days_histogram(
    django_capture_on_commit_callbacks,
):
    _write(
        [
            entry(occurred_at=DAY1, latency_ms=100.0),
            entry(occurred_at=DAY1, latency_ms=100.0, stream=True, ttft_ms=30.0),
            entry(occurred_at=DAY1, latency_ms=5.0, status=UsageStatus.ERROR, error_code="x"),
        ],
        django_capture_on_commit_callbacks,
    )
    ok = DailyRequests.objects.get(status="ok", everyone=False)
    assert ok.requests == 2
    assert ok.latency_histogram == {str(histograms.bucket_of(100.0)): 2}
    assert ok.ttft_histogram == {str(histograms.bucket_of(30.0)): 1}
    failed = DailyRequests.objects.get(status="error", everyone=False)
    assert (failed.error_code, failed.requests) == ("x", 1)

    _write(
        [entry(occurred_at=DAY1, latency_ms=100.0), entry(occurred_at=DAY1, latency_ms=0.5)],
        django_capture_on_commit_callbacks,
    )
    ok.refresh_from_db()
    assert ok.requests == 4
    assert ok.latency_histogram == {str(histograms.bucket_of(100.0)): 3, "0": 1}
    assert ok.ttft_histogram == {str(histograms.bucket_of(30.0)): 1}


def test_rebuilt_histograms_equal_the_live_ones(django_capture_on_commit_callbacks):
    rng = random.Random(7)  # noqa: S311 (seeded test data, not a secret)
    workload = []
    for i in range(120):
        stream = rng.random() < 0.5
        latency = rng.choice([0.0, 0.3, 2.0**20 * 3, *histograms.BOUNDS[40:80:3]])
        if i % 3:
            latency = rng.lognormvariate(6.0, 1.0)
        workload.append(
            entry(
                occurred_at=rng.choice([DAY1, DAY2]),
                user_id=rng.choice([ALICE, BOB, None]),
                status=rng.choice([UsageStatus.OK, UsageStatus.OK, UsageStatus.ERROR]),
                stream=stream,
                latency_ms=latency,
                ttft_ms=latency / 3 if stream else None,
                cost=Decimal("0.001"),
            )
        )
    _write(workload[:60], django_capture_on_commit_callbacks)
    _write(workload[60:], django_capture_on_commit_callbacks)
    live = _rollup()
    requests = [f.name for f in DailyRequests._meta.fields if f.name != "id"].index("requests")
    # Every request counts once in its user's rows and once in everyone's.
    assert sum(row[requests] for row in live if not row[2]) == len(workload)
    assert sum(row[requests] for row in live if row[2]) == len(workload)

    costs_rebuild()
    assert _rollup() == live


def test_latency_and_error_reports_read_the_rollup(django_capture_on_commit_callbacks):
    rng = random.Random(11)  # noqa: S311 (seeded test data, not a secret)
    latencies = [rng.lognormvariate(5.0, 0.8) for _ in range(300)]
    _write(
        [entry(occurred_at=DAY1, latency_ms=value) for value in latencies]
        + [entry(occurred_at=DAY2, user_id=BOB, latency_ms=50.0, stream=True, ttft_ms=20.0)]
        + [entry(occurred_at=DAY2, status=UsageStatus.CUT, error_code="") for _ in range(2)],
        django_capture_on_commit_callbacks,
    )
    (alices,) = latency_percentiles(
        actor=EVERYONE, since=DAY1.date(), until=DAY2.date(), user_id=ALICE
    )
    assert alices.requests == 300
    for percentile, estimate in alices.latency_ms.items():
        exact = _exact(latencies, percentile / 100)
        assert abs(estimate - exact) <= histograms.MAX_RELATIVE_ERROR * exact
    assert alices.ttft_ms == {50: None, 90: None, 99: None}

    by_day = latency_percentiles(
        actor=EVERYONE, since=DAY1.date(), until=DAY2.date(), group_by=["day", "user"]
    )
    assert [(row.keys["day"], row.keys["user"], row.requests) for row in by_day] == [
        (DAY1.date(), ALICE, 300),
        (DAY2.date(), BOB, 1),
    ]
    assert by_day[1].ttft_ms[50] == pytest.approx(20.0, rel=histograms.MAX_RELATIVE_ERROR)

    # Everyone's, by day: the rows for everyone, equal to the users' rows summed.
    (day1,) = latency_percentiles(
        actor=EVERYONE, since=DAY1.date(), until=DAY1.date(), group_by=["day"]
    )
    assert day1.requests == 300
    assert day1.latency_ms == alices.latency_ms

    errors = error_counts(
        actor=EVERYONE, since=DAY1.date(), until=DAY2.date(), group_by=["day", "status"]
    )
    assert [(row.keys, row.errors) for row in errors] == [
        ({"day": DAY2.date(), "status": "cut"}, 2)
    ]
    assert error_counts(actor=EVERYONE, since=DAY1.date(), until=DAY1.date()) == []


def test_the_migration_fills_the_rollup_with_what_the_projection_has_applied(
    django_capture_on_commit_callbacks,
):
    _write([entry(occurred_at=DAY1, latency_ms=10.0)], django_capture_on_commit_callbacks)
    pending = entry(occurred_at=DAY1, latency_ms=10.0)
    usage_submit(pending)
    usage_flush()  # committed with the test's transaction, its event not delivered yet
    migration = importlib.import_module(
        "lumina.providers.migrations.0006_daily_requests_latency_histograms"
    )
    DailyRequests.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute(migration.FILL, [migration.BOUNDS, migration.BOUNDS])
    mine = DailyRequests.objects.filter(everyone=False)
    assert mine.get().requests == 1  # the pending one is left to the event
    assert DailyRequests.objects.get(everyone=True).requests == 1
    bus.deliver(pending.id)
    assert mine.get().requests == 2
    assert DailyRequests.objects.get(everyone=True).requests == 2
