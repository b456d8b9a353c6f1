"""The usage ledger: buffered submits, batched writes, monthly partitions, nothing lost."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest
from django.db import OperationalError, connection
from structlog.testing import capture_logs

from lumina.kernel.models import OutboxEvent
from lumina.providers.events.usage import UsageRecorded
from lumina.providers.models.usage import DailyUsage, UsageRecord
from lumina.providers.services import usage as usage_services
from lumina.providers.services.usage import (
    usage_buffered,
    usage_flush,
    usage_partition_ensure,
    usage_submit,
)
from lumina.providers.types import Usage, UsageStatus
from tests.providers import usage_support
from tests.providers.usage_support import entry

# Fixtures of tests/providers/usage_support.py used here.
ledger = usage_support.ledger

pytestmark = pytest.mark.usefixtures("ledger")


def _transactions(table: str) -> set[str]:
    """The ids of the transactions that inserted the rows of ``table`` (PostgreSQL's xmin)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT xmin::text FROM {table}")  # noqa: S608
        return {row[0] for row in cursor.fetchall()}


def _partition_of(record_id) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM providers_usagerecord WHERE id = %s", [record_id]
        )
        return cursor.fetchone()[0]


def _partitions() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits "
            "WHERE inhparent = 'providers_usagerecord'::regclass"
        )
        return {row[0] for row in cursor.fetchall()}


def _name(month: dt.date) -> str:
    return f"providers_usagerecord_y{month.year:04d}m{month.month:02d}"


def _month(moment: dt.datetime | dt.date, ahead: int = 0) -> dt.date:
    index = moment.year * 12 + moment.month - 1 + ahead
    return dt.date(index // 12, index % 12 + 1, 1)


class _HeldTransport:
    """Keeps dispatched event ids instead of delivering them (their rows stay untouched)."""

    def __init__(self):
        self.dispatched: list[list] = []

    def dispatch(self, event_ids):
        self.dispatched.append(list(event_ids))


@pytest.mark.django_db(transaction=True)
def test_a_batch_of_submits_is_one_transaction_with_one_event_per_record(monkeypatch):
    held = _HeldTransport()
    monkeypatch.setattr("lumina.kernel.bus.transport", lambda: held)
    entries = [entry(request_id=f"req-{i}") for i in range(150)]
    for item in entries:
        usage_submit(item)
    assert usage_buffered() == 150
    assert UsageRecord.objects.count() == 0  # submitting wrote nothing

    assert usage_flush() == 150

    assert usage_buffered() == 0
    assert UsageRecord.objects.count() == 150
    events = OutboxEvent.objects.filter(name=UsageRecorded.name)
    assert {event.id for event in events} == {item.id for item in entries}
    # Ledger rows and outbox rows were inserted by one and the same transaction, whose
    # events went to the transport as one batch after it committed.
    ledger_tx = _transactions("providers_usagerecord")
    assert len(ledger_tx) == 1
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT xmin::text FROM kernel_outboxevent WHERE name = %s",
            [UsageRecorded.name],
        )
        assert {row[0] for row in cursor.fetchall()} == ledger_tx
    (dispatched,) = held.dispatched
    assert {item.id for item in entries} <= set(dispatched)


@pytest.mark.django_db(transaction=True)
def test_more_than_a_batch_is_written_in_batches_of_batch_size():
    for _ in range(usage_services.BATCH_SIZE + 50):
        usage_submit(entry())
    assert usage_flush() == usage_services.BATCH_SIZE + 50
    assert len(_transactions("providers_usagerecord")) == 2


@pytest.mark.django_db(transaction=True)
def test_the_background_writer_writes_within_moments_and_projects_the_costs(settings):
    settings.LUMINA_USAGE_WRITER_THREAD = True
    entries = [entry(cost=Decimal("0.25")) for _ in range(4)]
    for item in entries:
        usage_submit(item)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and DailyUsage.objects.count() == 0:
        time.sleep(0.02)
    usage_services.usage_writer_stop(flush=False)
    assert UsageRecord.objects.count() == 4
    assert len(_transactions("providers_usagerecord")) == 1
    (daily,) = DailyUsage.objects.all()
    assert daily.requests == 4
    assert daily.cost == Decimal("1.00")
    assert not OutboxEvent.objects.exclude(status=OutboxEvent.Status.DELIVERED).exists()


@pytest.mark.django_db(transaction=True)
def test_the_background_writer_retries_until_the_database_accepts(monkeypatch, settings):
    settings.LUMINA_USAGE_WRITER_THREAD = True
    monkeypatch.setattr(usage_services, "FLUSH_INTERVAL", 0.01)
    real = usage_services._write_batch
    failures = {"left": 2}

    def flaky(batch, events):
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("the database is restarting")
        return real(batch, events)

    monkeypatch.setattr(usage_services, "_write_batch", flaky)
    items = [entry() for _ in range(3)]
    for item in items:
        usage_submit(item)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and UsageRecord.objects.count() < 3:
        time.sleep(0.02)
    usage_services.usage_writer_stop(flush=False)
    assert failures["left"] == 0
    assert set(UsageRecord.objects.values_list("id", flat=True)) == {i.id for i in items}


@pytest.mark.django_db
def test_partitions_exist_for_this_month_and_the_next_two():
    today = dt.datetime.now(dt.UTC)
    partitions = _partitions()
    assert "providers_usagerecord_default" in partitions
    for ahead in range(3):
        assert _name(_month(today, ahead)) in partitions


@pytest.mark.django_db
def test_rows_land_in_their_month_partition_created_on_demand(django_capture_on_commit_callbacks):
    now = dt.datetime.now(dt.UTC)
    five_months_ago = now.replace(day=1) - dt.timedelta(days=140)
    old_month = _month(five_months_ago)
    assert _name(old_month) not in _partitions()
    recent, old = entry(occurred_at=now), entry(occurred_at=five_months_ago)
    usage_submit(recent)
    usage_submit(old)
    with django_capture_on_commit_callbacks(execute=True):
        usage_flush()
    assert _partition_of(recent.id) == _name(_month(now))
    assert _partition_of(old.id) == _name(old_month)


@pytest.mark.django_db
def test_a_row_far_outside_the_window_lands_in_default_and_later_moves_to_its_partition():
    far = entry(occurred_at=dt.datetime(2999, 1, 15, 12, tzinfo=dt.UTC))
    usage_submit(far)
    usage_flush()
    assert _partition_of(far.id) == "providers_usagerecord_default"
    assert _name(dt.date(2999, 1, 1)) not in _partitions()

    assert usage_partition_ensure(month=dt.date(2999, 1, 20)) == "providers_usagerecord_y2999m01"

    assert _partition_of(far.id) == "providers_usagerecord_y2999m01"
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM providers_usagerecord_default")
        assert cursor.fetchone()[0] == 0
    # The moved partition carries the table's keys and indexes like any other.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'providers_usagerecord_y2999m01'"
        )
        assert cursor.fetchone()[0] == 4


@pytest.mark.django_db
def test_nothing_is_lost_when_the_database_write_fails_once(monkeypatch):
    items = [entry() for _ in range(5)]
    for item in items:
        usage_submit(item)
    real = usage_services._insert
    calls = {"n": 0}

    def failing_once(entries):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OperationalError("connection to server was lost")
        return real(entries)

    monkeypatch.setattr(usage_services, "_insert", failing_once)
    with pytest.raises(OperationalError):
        usage_flush()
    assert usage_buffered() == 5
    assert UsageRecord.objects.count() == 0

    usage_submit(later := entry())
    assert usage_flush() == 6
    assert set(UsageRecord.objects.values_list("id", flat=True)) == {
        *(i.id for i in items),
        later.id,
    }
    assert OutboxEvent.objects.filter(name=UsageRecorded.name).count() == 6


@pytest.mark.django_db(transaction=True)
def test_a_batch_whose_commit_went_unconfirmed_is_not_written_twice(monkeypatch):
    items = [entry() for _ in range(3)]
    for item in items:
        usage_submit(item)
    real = usage_services._write_batch
    calls = {"n": 0}

    def committed_then_lost(batch, events):
        written = real(batch, events)
        calls["n"] += 1
        if calls["n"] == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return written

    monkeypatch.setattr(usage_services, "_write_batch", committed_then_lost)
    with pytest.raises(OperationalError):
        usage_flush()
    assert usage_buffered() == 3

    assert usage_flush() == 0

    assert UsageRecord.objects.count() == 3
    assert OutboxEvent.objects.filter(name=UsageRecorded.name).count() == 3
    assert not usage_services._suspect_ids


@pytest.mark.django_db
def test_a_record_the_database_refuses_is_logged_and_the_rest_are_written():
    good = [entry(), entry()]
    poison = entry(cost=Decimal("123456789012345"))  # beyond numeric(20, 10)
    for item in (good[0], poison, good[1]):
        usage_submit(item)
    with capture_logs() as logs:
        assert usage_flush() == 2
    assert set(UsageRecord.objects.values_list("id", flat=True)) == {i.id for i in good}
    refused = [log for log in logs if log["event"].startswith("usage record refused")]
    assert len(refused) == 1
    assert str(poison.id) in refused[0]["entry"]
    assert usage_buffered() == 0


@pytest.mark.django_db
def test_long_strings_and_naive_times_are_normalised_not_refused():
    item = entry(
        requested_model="m" * 400,
        error_code="e" * 300,
        occurred_at=dt.datetime(2026, 1, 2, 3, 4, 5),  # naive: taken as UTC
        status=UsageStatus.ERROR,
    )
    usage_submit(item)
    usage_flush()
    record = UsageRecord.objects.get(id=item.id)
    assert record.requested_model == "m" * 255
    assert record.error_code == "e" * 100
    assert record.occurred_at == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert record.status == "error"


def test_an_overflowing_buffer_drops_entries_and_says_so(monkeypatch):
    monkeypatch.setattr(usage_services, "MAX_BUFFERED", 3)
    monkeypatch.setattr(usage_services, "_overflow", {"dropped": 0, "logged_at": 0.0})
    with capture_logs() as logs:
        for _ in range(5):
            usage_submit(entry())
    assert usage_buffered() == 3
    (log,) = [log for log in logs if log["log_level"] == "error"]
    assert "dropped" in log["event"]
    assert log["dropped_total"] == 1  # logged at the first drop, then at most every few seconds
    assert usage_services._overflow["dropped"] == 2


def test_the_event_carries_every_field_of_the_entry_and_cost_as_a_string():
    item = entry(
        usage=Usage(
            input_tokens=10,
            cached_input_tokens=20,
            cache_write_tokens=30,
            output_tokens=40,
            reasoning_tokens=50,
            estimated=True,
        ),
        cost=Decimal("0.0000012345"),
        status=UsageStatus.CUT,
        stream=True,
        ttft_ms=12.5,
        error_code="upstream_closed",
    )
    event = UsageRecorded.from_entry(item)
    payload = event.payload()
    assert payload["cost"] == "0.0000012345"
    assert payload["status"] == "cut"
    assert payload["user_id"] == str(item.user_id)
    decoded = UsageRecorded.from_payload(
        id=event.id, occurred_at=event.occurred_at, payload=payload
    )
    assert decoded.to_entry() == item


def test_submit_only_buffers_and_touches_no_database():
    # No django_db mark: a query here would raise. The cost per call is measured by
    # benchmarks/hot_path.py.
    items = [entry() for _ in range(1_000)]
    usage_services._buffer.clear()
    for item in items:
        usage_submit(item)
    assert list(usage_services._buffer) == items
    usage_services._buffer.clear()
