"""The cost projection as a batch handler: one upsert per delivery batch, equal to the rebuild."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lumina.kernel import bus, transports
from lumina.kernel.models import OutboxEvent, ProcessedEvent
from lumina.providers.events.usage import UsageRecorded
from lumina.providers.models.usage import DailyUsage
from lumina.providers.services.costs import DAILY_USAGE_PROJECTION, costs_rebuild
from lumina.providers.services.usage import usage_flush, usage_submit
from lumina.providers.types import Usage, UsageStatus
from tests.providers import usage_support
from tests.providers.usage_support import ALICE, BOB, entry

ledger = usage_support.ledger

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ledger")]

DAY = dt.datetime(2026, 4, 2, 12, 0, tzinfo=dt.UTC)
_COLUMNS = [f.name for f in DailyUsage._meta.fields if f.name != "id"]


def _daily_rows() -> list[tuple]:
    return sorted(DailyUsage.objects.values_list(*_COLUMNS), key=lambda row: tuple(map(str, row)))


def _upserts(queries) -> list[str]:
    table = DailyUsage._meta.db_table
    return [q["sql"] for q in queries if q["sql"].startswith("INSERT") and table in q["sql"]]


def test_a_batch_is_summed_per_day_and_key_and_written_with_one_upsert(
    django_capture_on_commit_callbacks,
):
    # 200 requests on 4 keys: the same rollup row many times over in each delivery batch.
    entries = [
        entry(
            occurred_at=DAY + dt.timedelta(days=n % 2),
            user_id=(ALICE, BOB)[n // 2 % 2],
            status=UsageStatus.ERROR if n % 10 == 0 else UsageStatus.OK,
            usage=Usage(input_tokens=n, output_tokens=1, estimated=n % 3 == 0),
            cost=Decimal("0.0001"),
        )
        for n in range(200)
    ]
    for item in entries:
        usage_submit(item)
    with (
        CaptureQueriesContext(connection) as queries,
        django_capture_on_commit_callbacks(execute=True),
    ):
        usage_flush()

    assert len(_upserts(queries)) == math.ceil(len(entries) / transports.BATCH_SIZE)
    assert DailyUsage.objects.count() == 4
    assert sum(DailyUsage.objects.values_list("requests", flat=True)) == 200
    assert sum(DailyUsage.objects.values_list("errors", flat=True)) == 20
    assert sum(DailyUsage.objects.values_list("input_tokens", flat=True)) == sum(range(200))
    assert sum(DailyUsage.objects.values_list("cost", flat=True)) == Decimal("0.02")
    assert ProcessedEvent.objects.filter(handler=DAILY_USAGE_PROJECTION).count() == 200

    live = _daily_rows()
    costs_rebuild()
    assert _daily_rows() == live


def test_costs_finer_than_the_ledger_add_up_as_the_rebuild_counts_them(
    django_capture_on_commit_callbacks,
):
    # The ledger keeps 10 decimals: each of these is stored as 0.0000000001, so three of
    # them are 3e-10, though their exact sum (1.5e-10) would round to 2e-10.
    entries = [entry(occurred_at=DAY, cost=Decimal("0.00000000005")) for _ in range(3)]
    for item in entries:
        usage_submit(item)
    with django_capture_on_commit_callbacks(execute=True):
        usage_flush()
    assert DailyUsage.objects.get().cost == Decimal("0.0000000003")
    costs_rebuild()
    assert DailyUsage.objects.get().cost == Decimal("0.0000000003")


def test_a_usage_event_the_rollup_refuses_stays_pending_alone():
    good = [UsageRecorded.from_entry(entry(occurred_at=DAY)) for _ in range(3)]
    # More dollars than the rollup's cost column holds: the database refuses the batch.
    bad = UsageRecorded.from_entry(entry(occurred_at=DAY, cost=Decimal(10) ** 15))
    bus.publish_many([good[0], bad, *good[1:]])  # in the test's transaction: not delivered

    bus.deliver_many([event.id for event in [*good, bad]])

    assert DailyUsage.objects.get().requests == 3
    statuses = dict(OutboxEvent.objects.values_list("id", "status"))
    assert [statuses[event.id] for event in good] == ["delivered"] * 3
    row = OutboxEvent.objects.get(pk=bad.id)
    assert row.status == OutboxEvent.Status.PENDING
    assert f"{DAILY_USAGE_PROJECTION}: DataError" in row.last_error
    # Other handlers of the event (realtime notifications) applied it; the rollup did not.
    assert not ProcessedEvent.objects.filter(
        event_id=bad.id, handler=DAILY_USAGE_PROJECTION
    ).exists()
