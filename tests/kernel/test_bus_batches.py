"""Batches on the bus: ``publish_many``, batch handlers, and set-based delivery bookkeeping."""

import uuid

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from lumina.kernel import bus
from lumina.kernel.models import OutboxEvent, ProcessedEvent
from tests.kernel.conftest import OrderPlaced

OUTBOX = OutboxEvent._meta.db_table
PROCESSED = ProcessedEvent._meta.db_table
BAD = 13  # the amount the batch handler below refuses


def _orders(*amounts: int) -> list[OrderPlaced]:
    return [OrderPlaced(order_id=uuid.uuid4(), amount=amount) for amount in amounts]


def _statements_that_wrote(ids) -> int:
    """How many statements inserted these outbox rows (rows of one statement share cmin)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(DISTINCT cmin::text) FROM {OUTBOX} WHERE id = ANY(%s)",  # noqa: S608
            [list(ids)],
        )
        return cursor.fetchone()[0]


def _status(event_id) -> OutboxEvent:
    return OutboxEvent.objects.get(pk=event_id)


def _make_due(*event_ids):
    OutboxEvent.objects.filter(pk__in=event_ids).update(next_attempt_at=timezone.now())


def _effects() -> list[uuid.UUID]:
    """Event ids whose batch handler effect (a row the handler wrote) is in the database."""
    rows = ProcessedEvent.objects.filter(handler="effect").order_by("processed_at", "id")
    return list(rows.values_list("event_id", flat=True))


class BatchRecorder:
    """A batch handler with a database effect; it refuses any batch holding a BAD order."""

    def __init__(self):
        self.calls: list[list[int]] = []
        self.refused: int | None = BAD

    def __call__(self, events: list[OrderPlaced]) -> None:
        self.calls.append([event.amount for event in events])
        # The effect goes in before the refusal, so a refusal must roll it back.
        ProcessedEvent.objects.bulk_create(
            [ProcessedEvent(event_id=event.id, handler="effect") for event in events]
        )
        if any(event.amount == self.refused for event in events):
            raise ValueError(f"order amount {self.refused} refused")


@pytest.fixture
def batch_recorder():
    handler = BatchRecorder()

    def project_orders(events):
        handler(events)

    bus.subscribe(OrderPlaced, batch=True)(project_orders)
    handler.handler_id = f"{project_orders.__module__}.{project_orders.__qualname__}"
    yield handler
    bus.unsubscribe(project_orders)


# -- publish_many ------------------------------------------------------------------------


@pytest.mark.django_db
def test_publish_many_writes_every_outbox_row_with_one_statement(recording_transport):
    events = _orders(*range(50))
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        bus.publish_many(events)
    rows = OutboxEvent.objects.filter(pk__in=[e.id for e in events])
    assert rows.count() == 50
    assert {row.status for row in rows} == {OutboxEvent.Status.PENDING}
    assert {(row.name, row.version, row.kind) for row in rows} == {
        ("testing.OrderPlaced", 1, "domain")
    }
    assert sorted(row.payload["amount"] for row in rows) == list(range(50))
    assert _statements_that_wrote(e.id for e in events) == 1
    (statement,) = [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]
    assert statement.startswith(f"COPY {OUTBOX} ")


@pytest.mark.django_db
def test_a_single_publish_is_one_insert(recording_transport):
    (event,) = _orders(7)
    with CaptureQueriesContext(connection) as queries:
        bus.publish(event)
    inserts = [q["sql"] for q in queries if q["sql"].startswith("INSERT") and OUTBOX in q["sql"]]
    assert len(queries) == len(inserts) == 1
    assert _status(event.id).payload == {"order_id": str(event.order_id), "amount": 7}


@pytest.mark.django_db(transaction=True)
def test_publish_many_rows_roll_back_with_the_transaction(recorder):
    events = _orders(1, 2, 3)

    def publish_then_fail():
        with transaction.atomic():
            bus.publish_many(events)
            raise RuntimeError("caller failed after publishing")

    with pytest.raises(RuntimeError, match="caller failed"):
        publish_then_fail()
    assert not OutboxEvent.objects.exists()
    assert recorder.seen == []


@pytest.mark.django_db(transaction=True)
def test_publish_many_delivers_after_commit_in_publish_order(recorder):
    events = _orders(5, 3, 9, 1, 7)
    with transaction.atomic():
        bus.publish_many(events[:3])
        bus.publish(events[3])
        bus.publish_many(events[4:])
        assert recorder.seen == []  # nothing before commit
    assert [e.amount for e in recorder.seen] == [5, 3, 9, 1, 7]
    assert [e.id for e in recorder.seen] == [e.id for e in events]
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {"delivered"}


@pytest.mark.django_db
def test_publishing_no_events_does_nothing(recording_transport, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        bus.publish_many([])
    assert callbacks == []
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db
def test_a_duplicate_event_id_is_an_integrity_error(recording_transport):
    from django.db import IntegrityError

    (event,) = _orders(1)
    with pytest.raises(IntegrityError):  # Django's class, for callers that catch it
        bus.publish_many([event, event])


# -- batch handlers ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_batch_handler_gets_the_whole_batch_in_one_call(batch_recorder):
    events = _orders(1, 2, 3, 4, 5)
    with transaction.atomic():
        bus.publish_many(events)
    assert batch_recorder.calls == [[1, 2, 3, 4, 5]]
    assert _effects() == [e.id for e in events]
    marked = ProcessedEvent.objects.filter(handler=batch_recorder.handler_id)
    assert set(marked.values_list("event_id", flat=True)) == {e.id for e in events}
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {"delivered"}


@pytest.mark.django_db(transaction=True)
def test_a_failing_batch_falls_back_per_event_and_only_the_bad_event_stays_pending(
    batch_recorder, recorder
):
    events = _orders(1, BAD, 3)
    with transaction.atomic():
        bus.publish_many(events)

    assert batch_recorder.calls == [[1, BAD, 3], [1], [BAD], [3]]
    # The refused batch's effects were rolled back: each good event counted once.
    assert sorted(_effects(), key=str) == sorted([events[0].id, events[2].id], key=str)
    assert [e.amount for e in recorder.seen] == [1, BAD, 3]  # the other handler is untouched
    good, bad = [_status(e.id) for e in (events[0], events[2])], _status(events[1].id)
    assert [row.status for row in good] == ["delivered", "delivered"]
    assert bad.status == OutboxEvent.Status.PENDING
    assert bad.attempts == 1
    assert f"{batch_recorder.handler_id}: ValueError: order amount {BAD} refused" in bad.last_error
    assert bad.next_attempt_at > timezone.now()
    assert ProcessedEvent.objects.filter(event_id=bad.id).count() == 1  # the other handler's


@pytest.mark.django_db(transaction=True)
def test_redelivery_runs_only_what_has_not_been_applied(batch_recorder, recorder):
    events = _orders(1, BAD, 3)
    with transaction.atomic():
        bus.publish_many(events)
    batch_recorder.calls.clear()
    batch_recorder.refused = None  # whatever was wrong is fixed

    _make_due(*[e.id for e in events])
    rows = bus.deliver_many([e.id for e in events])  # the good ones are delivered: skipped
    assert [row.id for row in rows] == [events[1].id]
    assert batch_recorder.calls == [[BAD]]
    assert len(recorder.seen) == 3  # its (event, handler) pair was recorded the first time
    assert _status(events[1].id).status == OutboxEvent.Status.DELIVERED
    assert len(_effects()) == 3

    OutboxEvent.objects.update(status=OutboxEvent.Status.PENDING)  # e.g. handed over twice
    bus.deliver_many([e.id for e in events])
    assert batch_recorder.calls == [[BAD]]
    assert len(recorder.seen) == 3
    assert ProcessedEvent.objects.filter(handler=batch_recorder.handler_id).count() == 3


@pytest.mark.django_db
def test_a_batch_of_one_that_fails_is_not_retried_in_the_same_delivery(
    batch_recorder, recording_transport
):
    (event,) = _orders(BAD)
    bus.publish(event)
    bus.deliver(event.id)
    assert batch_recorder.calls == [[BAD]]
    assert _status(event.id).attempts == 1


@pytest.mark.django_db
def test_a_mark_made_while_the_handlers_ran_undoes_them_and_they_run_one_by_one(
    batch_recorder, recording_transport
):
    """What ``costs_rebuild`` does: it marks pending events as applied, mid-delivery."""
    events = _orders(1, 2)
    bus.publish_many(events)

    def rebuild_marks_second_event(event):
        ProcessedEvent.objects.get_or_create(
            event_id=events[1].id, handler=batch_recorder.handler_id
        )

    bus.subscribe(OrderPlaced)(rebuild_marks_second_event)
    try:
        bus.deliver_many([e.id for e in events])
    finally:
        bus.unsubscribe(rebuild_marks_second_event)

    # First pass: the batch ran, its marks conflicted, all of it was undone. Second pass,
    # one mark per savepoint: the second event's mark conflicts and undoes only it.
    assert batch_recorder.calls == [[1, 2], [1, 2], [1], [2]]
    assert _effects() == [events[0].id]  # the second event's effect was never kept
    assert _status(events[0].id).status == OutboxEvent.Status.DELIVERED
    second = _status(events[1].id)
    assert second.status == OutboxEvent.Status.PENDING
    assert "IntegrityError" in second.last_error

    bus.deliver_many([events[1].id])  # the mark says it is applied: nothing runs again
    assert batch_recorder.calls == [[1, 2], [1, 2], [1], [2]]
    assert _status(events[1].id).status == OutboxEvent.Status.DELIVERED
    assert _effects() == [events[0].id]


# -- delivery bookkeeping ----------------------------------------------------------------


@pytest.mark.django_db
def test_delivery_marks_and_updates_a_batch_with_set_based_statements(
    recorder, batch_recorder, recording_transport
):
    events = _orders(*range(100, 140))
    bus.publish_many(events)
    with CaptureQueriesContext(connection) as queries:
        rows = bus.deliver_many([e.id for e in events])
    sql = [q["sql"].strip() for q in queries]
    updates = [s for s in sql if s.startswith("UPDATE") and OUTBOX in s]
    assert len(updates) == 1
    assert "CASE" not in updates[0]
    assert "ANY" in updates[0]
    # One savepoint per per-event handler call (40) and one for the batch handler's call,
    # plus the one around them all and deliver_many's own (a savepoint in this test).
    assert len([s for s in sql if s.startswith("SAVEPOINT")]) == 40 + 1 + 2
    assert len([s for s in sql if s.startswith(f"COPY {PROCESSED} ")]) == 1
    marks = ProcessedEvent.objects.exclude(handler="effect")
    assert marks.count() == 80
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(DISTINCT cmin::text) FROM {PROCESSED} WHERE handler <> 'effect'"  # noqa: S608
        )
        assert cursor.fetchone()[0] == 1  # every mark by one statement
    assert len(rows) == 40
    stored = {row.id: row for row in OutboxEvent.objects.all()}
    for row in rows:
        assert row.status == stored[row.id].status == OutboxEvent.Status.DELIVERED
        assert row.attempts == stored[row.id].attempts == 1
        assert row.delivered_at == stored[row.id].delivered_at is not None
        assert stored[row.id].last_error == ""


@pytest.mark.django_db
def test_failed_rows_get_attempts_backoff_and_their_error(
    recorder, batch_recorder, recording_transport, settings
):
    settings.LUMINA_EVENT_MAX_ATTEMPTS = 2
    events = _orders(1, BAD, 3, BAD)
    bus.publish_many(events)
    before = timezone.now()

    rows = {row.id: row for row in bus.deliver_many([e.id for e in events])}
    for event in events:
        stored = _status(event.id)
        assert stored.attempts == rows[event.id].attempts == 1
        if event.amount == BAD:
            assert stored.status == OutboxEvent.Status.PENDING
            assert "ValueError: order amount 13 refused" in stored.last_error
            assert stored.delivered_at is None
            delay = (stored.next_attempt_at - before).total_seconds()
            assert 1 <= delay <= 2 + 1  # the first backoff is 1–2 s
            assert stored.next_attempt_at == rows[event.id].next_attempt_at
        else:
            assert stored.status == OutboxEvent.Status.DELIVERED
            assert stored.last_error == ""

    bad = [e.id for e in events if e.amount == BAD]
    assert len(bus.deliver_many(bad)) == 2
    for event_id in bad:
        stored = _status(event_id)
        assert (stored.status, stored.attempts) == (OutboxEvent.Status.FAILED, 2)
        assert "refused" in stored.last_error
    assert bus.relay() == 0


@pytest.mark.django_db
def test_an_event_nobody_handles_is_delivered_without_being_decoded(
    recording_transport, monkeypatch
):
    (event,) = _orders(1)
    bus.publish(event)

    def no_decoding(**kwargs):
        raise AssertionError("decoded an event no handler needs")

    monkeypatch.setattr(OrderPlaced, "from_payload", no_decoding)
    (row,) = bus.deliver_many([event.id])
    assert row.status == OutboxEvent.Status.DELIVERED
