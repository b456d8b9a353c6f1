"""The cost read model: the projection, its rebuild from the ledger, and grouped reports."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lumina.kernel import bus
from lumina.kernel.models import OutboxEvent, ProcessedEvent
from lumina.providers.events.usage import UsageRecorded
from lumina.providers.handlers.usage import project_daily_usage
from lumina.providers.models.usage import DailyUsage, UsageRecord
from lumina.providers.selectors.costs import (
    CostRow,
    ReportError,
    cost_report,
    cost_total,
    usage_spent,
)
from lumina.providers.services.costs import DAILY_USAGE_PROJECTION, costs_rebuild
from lumina.providers.services.usage import usage_flush, usage_submit
from lumina.providers.types import Usage, UsageStatus
from tests.providers import usage_support
from tests.providers.usage_support import (
    ALICE,
    ANTHROPIC,
    BOB,
    OPENAI,
    TOKEN,
    entry,
)

# Fixtures of tests/providers/usage_support.py used here.
ledger = usage_support.ledger

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ledger")]

DAY1 = dt.datetime(2026, 3, 30, 23, 59, 59, tzinfo=dt.UTC)
DAY2 = dt.datetime(2026, 3, 31, 0, 0, 1, tzinfo=dt.UTC)
_COLUMNS = [f.name for f in DailyUsage._meta.fields if f.name != "id"]


def _mixed_workload() -> list:
    """Streamed, failed, cut, cancelled, rejected and estimated records: two days, two users."""
    bob_token = uuid.uuid4()
    return [
        entry(occurred_at=DAY1, cost=Decimal("0.0015")),
        entry(
            occurred_at=DAY1,
            stream=True,
            usage=Usage(input_tokens=10, cached_input_tokens=90, output_tokens=5),
            cost=Decimal("0.00042"),
        ),
        entry(occurred_at=DAY1, status=UsageStatus.ERROR, usage=Usage(), cost=Decimal(0)),
        entry(
            occurred_at=DAY2,
            stream=True,
            status=UsageStatus.CUT,
            usage=Usage(input_tokens=50, output_tokens=7, estimated=True),
            cost=Decimal("0.0000375"),
        ),
        entry(
            occurred_at=DAY2,
            user_id=BOB,
            token_id=bob_token,
            provider_id=ANTHROPIC,
            provider_name="anthropic",
            model="claude-sonnet",
            usage=Usage(
                input_tokens=1000, cache_write_tokens=500, output_tokens=200, reasoning_tokens=300
            ),
            cost=Decimal("0.0123"),
        ),
        entry(
            occurred_at=DAY2,
            user_id=BOB,
            token_id=bob_token,
            provider_id=None,
            provider_name="",
            model="",
            status=UsageStatus.REJECTED,
            usage=Usage(),
            cost=Decimal(0),
        ),
        entry(
            occurred_at=DAY2,
            operation="embeddings",
            model="text-embedding-3-small",
            usage=Usage(input_tokens=64, estimated=True),
            cost=Decimal("0.00000128"),
        ),
        entry(occurred_at=DAY2, status=UsageStatus.CANCELLED, cost=Decimal("0.0002")),
    ]


def _write(entries, capture) -> None:
    for item in entries:
        usage_submit(item)
    with capture(execute=True):
        usage_flush()


def _daily_rows() -> list[tuple]:
    return sorted(
        DailyUsage.objects.values_list(*_COLUMNS),
        key=lambda row: tuple(str(value) for value in row),
    )


def test_the_projection_adds_each_record_to_its_day_and_key(django_capture_on_commit_callbacks):
    _write(
        [
            entry(occurred_at=DAY1, cost=Decimal("0.5")),
            entry(occurred_at=DAY1, cost=Decimal("0.25"), status=UsageStatus.ERROR),
            entry(occurred_at=DAY2, cost=Decimal("1"), usage=Usage(input_tokens=7, estimated=True)),
        ],
        django_capture_on_commit_callbacks,
    )
    first = DailyUsage.objects.get(day=DAY1.date())
    assert (first.requests, first.errors, first.estimated) == (2, 1, 0)
    assert (first.input_tokens, first.output_tokens) == (200, 40)
    assert first.cost == Decimal("0.75")
    assert (first.user_id, first.token_id, first.provider_id) == (ALICE, TOKEN, OPENAI)
    second = DailyUsage.objects.get(day=DAY2.date())
    assert (second.requests, second.estimated, second.input_tokens) == (1, 1, 7)


def test_records_without_user_or_provider_share_one_row_per_day(
    django_capture_on_commit_callbacks,
):
    anonymous = {"user_id": None, "token_id": None, "provider_id": None, "provider_name": ""}
    _write(
        [entry(occurred_at=DAY1, **anonymous) for _ in range(3)], django_capture_on_commit_callbacks
    )
    (row,) = DailyUsage.objects.all()
    assert row.requests == 3


def test_a_redelivered_event_is_not_counted_twice(django_capture_on_commit_callbacks):
    item = entry(occurred_at=DAY1, cost=Decimal("0.1"))
    _write([item], django_capture_on_commit_callbacks)
    OutboxEvent.objects.filter(pk=item.id).update(status=OutboxEvent.Status.PENDING)
    bus.deliver(item.id)  # e.g. a relay that handed the event over twice
    assert DailyUsage.objects.get().requests == 1


def test_the_projection_handler_is_subscribed_under_the_id_the_rebuild_marks():
    key = f"{UsageRecorded.name}.v{UsageRecorded.version}"
    ids = [sub.handler_id for sub in bus.subscriptions(key) if sub.handler is project_daily_usage]
    assert ids == [DAILY_USAGE_PROJECTION]


def test_rebuilt_totals_equal_the_live_ones_after_a_mixed_workload(
    django_capture_on_commit_callbacks,
):
    workload = _mixed_workload()
    _write(workload[:5], django_capture_on_commit_callbacks)
    _write(workload[5:], django_capture_on_commit_callbacks)
    live = _daily_rows()
    live_report = cost_report(since=DAY1.date(), until=DAY2.date(), group_by=["user", "day"])
    assert sum(row[_COLUMNS.index("requests")] for row in live) == len(workload)

    report = costs_rebuild()

    assert _daily_rows() == live
    assert (
        cost_report(since=DAY1.date(), until=DAY2.date(), group_by=["user", "day"]) == live_report
    )
    assert report.requests == len(workload)
    assert report.rows == report.rows_before == len(live)
    assert report.cost == sum(item.cost for item in workload)


def test_rebuild_recovers_a_corrupted_read_model(django_capture_on_commit_callbacks):
    _write(_mixed_workload(), django_capture_on_commit_callbacks)
    live = _daily_rows()
    DailyUsage.objects.filter(day=DAY1.date()).update(requests=999, cost=Decimal(42))
    DailyUsage.objects.filter(day=DAY2.date()).first().delete()
    costs_rebuild()
    assert _daily_rows() == live


def test_events_the_rebuild_counted_are_not_projected_again(django_capture_on_commit_callbacks):
    _write([entry(occurred_at=DAY1)], django_capture_on_commit_callbacks)
    pending = entry(occurred_at=DAY1)
    usage_submit(pending)
    usage_flush()  # committed with the test's transaction, not delivered yet

    report = costs_rebuild()
    assert report.pending_events == 1
    assert DailyUsage.objects.get().requests == 2

    bus.deliver(pending.id)  # the projection finally gets to it
    assert DailyUsage.objects.get().requests == 2
    assert ProcessedEvent.objects.filter(
        event_id=pending.id, handler=DAILY_USAGE_PROJECTION
    ).exists()


def _report_fixture(capture):
    _write(_mixed_workload(), capture)


def test_reports_group_by_user_model_and_day(django_capture_on_commit_callbacks):
    _report_fixture(django_capture_on_commit_callbacks)
    rows = cost_report(since=DAY1.date(), until=DAY2.date(), group_by=["user", "model", "day"])
    keys = [(row.user_id, row.model, row.day) for row in rows]
    assert keys == sorted(keys, key=lambda k: (str(k[0]), k[1], k[2]))
    by_key = {(row.user_id, row.model, row.day): row for row in rows}
    alice_day1 = by_key[(ALICE, "gpt-4o-mini", DAY1.date())]
    assert (alice_day1.requests, alice_day1.errors) == (3, 1)
    assert alice_day1.cached_input_tokens == 90
    assert alice_day1.cost == Decimal("0.00192")
    assert alice_day1.token_id is None  # not grouped
    assert alice_day1.provider_id is None
    bob = by_key[(BOB, "claude-sonnet", DAY2.date())]
    assert (bob.cache_write_tokens, bob.reasoning_tokens, bob.total_tokens) == (500, 300, 2000)
    rejected = by_key[(BOB, "", DAY2.date())]
    assert (rejected.requests, rejected.errors, rejected.cost) == (1, 1, Decimal(0))


def test_reports_group_by_provider_token_and_operation(django_capture_on_commit_callbacks):
    _report_fixture(django_capture_on_commit_callbacks)
    by_provider = cost_report(since=DAY1.date(), until=DAY2.date(), group_by=["provider"])
    assert {(row.provider_id, row.provider_name): row.requests for row in by_provider} == {
        (OPENAI, "openai"): 6,
        (ANTHROPIC, "anthropic"): 1,
        (None, ""): 1,
    }
    by_operation = cost_report(since=DAY1.date(), until=DAY2.date(), group_by=["operation"])
    assert {row.operation: (row.requests, row.estimated) for row in by_operation} == {
        "chat": (7, 1),
        "embeddings": (1, 1),
    }
    mine = cost_report(since=DAY1.date(), until=DAY2.date(), group_by=["token"], user_id=ALICE)
    assert [(row.token_id, row.requests) for row in mine] == [(TOKEN, 6)]


def test_an_ungrouped_report_is_one_total_and_ranges_include_both_ends(
    django_capture_on_commit_callbacks,
):
    _report_fixture(django_capture_on_commit_callbacks)
    (total,) = cost_report(since=DAY1.date(), until=DAY2.date())
    assert total.requests == 8
    assert total == cost_total(cost_report(since=DAY1.date(), until=DAY2.date(), group_by=["day"]))
    (first_day,) = cost_report(since=DAY1.date(), until=DAY1.date())
    assert first_day.requests == 3
    assert cost_report(since=dt.date(2020, 1, 1), until=dt.date(2020, 1, 2)) == []
    assert cost_total([]) == CostRow()


def test_reports_read_the_rollups_and_never_the_raw_ledger(django_capture_on_commit_callbacks):
    _report_fixture(django_capture_on_commit_callbacks)
    with CaptureQueriesContext(connection) as queries:
        cost_report(since=DAY1.date(), until=DAY2.date(), group_by=["user", "model", "day"])
        cost_report(since=DAY1.date(), until=DAY2.date())
        usage_spent(scope="user", subject_id=ALICE, since=DAY1.date())
    assert len(queries) == 3
    sql = " ".join(query["sql"] for query in queries)
    assert DailyUsage._meta.db_table in sql
    assert UsageRecord._meta.db_table not in sql


def test_an_unknown_group_or_a_reversed_range_is_refused_naming_the_field():
    with pytest.raises(ReportError) as unknown:
        cost_report(since=DAY1.date(), until=DAY2.date(), group_by=["user", "colour"])
    assert "group_by" in unknown.value.fields
    with pytest.raises(ReportError) as reversed_range:
        cost_report(since=DAY2.date(), until=DAY1.date())
    assert "until" in reversed_range.value.fields


def test_money_spent_since_a_day_comes_from_the_rollups(django_capture_on_commit_callbacks):
    _report_fixture(django_capture_on_commit_callbacks)
    assert usage_spent(scope="user", subject_id=BOB, since=DAY1.date()) == Decimal("0.0123")
    assert usage_spent(scope="token", subject_id=TOKEN, since=DAY2.date()) == Decimal("0.00023878")


@pytest.mark.django_db(transaction=True)
def test_a_rebuild_in_its_own_transaction_equals_the_live_projection():
    for item in _mixed_workload():
        usage_submit(item)
    usage_flush()  # committed, and projected by the in-process transport after the commit
    assert not OutboxEvent.objects.exclude(status=OutboxEvent.Status.DELIVERED).exists()
    live = _daily_rows()
    report = costs_rebuild()  # outermost: repeatable read, the rollups locked first
    assert _daily_rows() == live
    assert report.pending_events == 0
