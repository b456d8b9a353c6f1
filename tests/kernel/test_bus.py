"""The outbox bus: delivery on commit, idempotent handlers, retries, replay."""

import datetime as dt
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

from lumina.kernel import bus
from lumina.kernel.models import OutboxEvent, ProcessedEvent
from tests.kernel.conftest import OrderPlaced


def _place(amount: int = 10) -> OrderPlaced:
    event = OrderPlaced(order_id=uuid.uuid4(), amount=amount)
    bus.publish(event)
    return event


def _make_due(event_id):
    OutboxEvent.objects.filter(pk=event_id).update(next_attempt_at=timezone.now())


@pytest.mark.django_db(transaction=True)
def test_committed_event_is_delivered_once_after_commit(recorder):
    with transaction.atomic():
        event = _place(42)
        assert recorder.seen == []  # nothing before commit
    assert [e.amount for e in recorder.seen] == [42]
    row = OutboxEvent.objects.get(pk=event.id)
    assert row.status == OutboxEvent.Status.DELIVERED
    assert row.attempts == 1
    assert row.delivered_at is not None


@pytest.mark.django_db(transaction=True)
def test_rolled_back_transaction_delivers_nothing_and_leaves_no_row(recorder):
    event = None

    def place_then_fail():
        nonlocal event
        with transaction.atomic():
            event = _place()
            raise RuntimeError("caller failed after publishing")

    with pytest.raises(RuntimeError, match="caller failed"):
        place_then_fail()
    assert recorder.seen == []
    assert not OutboxEvent.objects.filter(pk=event.id).exists()
    assert bus.relay() == 0


@pytest.mark.django_db(transaction=True)
def test_failing_handler_is_retried_with_backoff_and_its_event_kept(recorder):
    recorder.failures_left = 2
    with transaction.atomic():
        event = _place()

    row = OutboxEvent.objects.get(pk=event.id)
    assert row.status == OutboxEvent.Status.PENDING
    assert row.attempts == 1
    assert "RuntimeError: downstream unavailable" in row.last_error
    assert row.next_attempt_at > timezone.now()  # backing off, not hot-looping
    assert bus.relay() == 0  # not due yet

    _make_due(event.id)
    assert bus.relay() == 1
    row.refresh_from_db()
    assert row.attempts == 2
    first_delay = row.next_attempt_at - timezone.now()
    assert first_delay > dt.timedelta(seconds=1)

    _make_due(event.id)
    bus.relay()
    row.refresh_from_db()
    assert row.status == OutboxEvent.Status.DELIVERED
    assert row.attempts == 3
    assert row.last_error == ""
    assert len(recorder.seen) == 1


def test_backoff_grows_exponentially_and_is_capped():
    for attempts in range(1, 8):
        delay = bus.backoff(attempts).total_seconds()
        ceiling = 2.0 * 2 ** (attempts - 1)
        assert ceiling / 2 <= delay <= ceiling
    assert bus.backoff(40).total_seconds() <= bus.BACKOFF_CAP_SECONDS


@pytest.mark.django_db
def test_handler_that_already_succeeded_is_not_run_again(
    recorder, django_capture_on_commit_callbacks
):
    calls = []

    def second(event):
        calls.append(event.id)
        if len(calls) == 1:
            raise RuntimeError("first try fails")

    bus.subscribe(OrderPlaced)(second)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            event = _place()
        assert len(recorder.seen) == 1
        assert len(calls) == 1

        _make_due(event.id)
        bus.relay()
    finally:
        bus.unsubscribe(second)

    assert len(recorder.seen) == 1  # recorded as processed, skipped on redelivery
    assert len(calls) == 2
    assert ProcessedEvent.objects.filter(event_id=event.id).count() == 2
    assert OutboxEvent.objects.get(pk=event.id).status == OutboxEvent.Status.DELIVERED


@pytest.mark.django_db
def test_event_gives_up_after_max_attempts_and_replay_delivers_it(
    recorder, settings, django_capture_on_commit_callbacks
):
    settings.LUMINA_EVENT_MAX_ATTEMPTS = 2
    recorder.failures_left = 2
    with django_capture_on_commit_callbacks(execute=True):
        event = _place()
    _make_due(event.id)
    bus.relay()
    row = OutboxEvent.objects.get(pk=event.id)
    assert row.status == OutboxEvent.Status.FAILED
    assert row.attempts == 2
    assert bus.relay() == 0  # failed events wait for an operator

    delivered = bus.replay()
    assert [r.id for r in delivered] == [event.id]
    row.refresh_from_db()
    assert row.status == OutboxEvent.Status.DELIVERED
    assert len(recorder.seen) == 1


@pytest.mark.django_db
def test_unknown_event_is_a_recorded_failure_not_a_crash(settings):
    OutboxEvent.objects.create(
        id=uuid.uuid4(),
        name="gone.Removed",
        version=1,
        kind="domain",
        payload={},
        occurred_at=timezone.now(),
        next_attempt_at=timezone.now(),
    )
    assert bus.relay() == 1
    row = OutboxEvent.objects.get()
    assert row.status == OutboxEvent.Status.PENDING
    assert "UnknownEventError" in row.last_error


@pytest.mark.django_db
def test_events_command_lists_and_replays_failed_events(
    recorder, settings, capsys, django_capture_on_commit_callbacks
):
    settings.LUMINA_EVENT_MAX_ATTEMPTS = 1
    recorder.failures_left = 1
    with django_capture_on_commit_callbacks(execute=True):
        event = _place()

    call_command("events", "list")
    out = capsys.readouterr().out
    assert str(event.id) in out
    assert "failed" in out
    assert "downstream unavailable" in out
    assert "1 event(s) pending/failed" in out

    call_command("events", "replay")
    out = capsys.readouterr().out
    assert "replayed 1, delivered 1" in out
    assert OutboxEvent.objects.get(pk=event.id).status == OutboxEvent.Status.DELIVERED

    call_command("events", "list")
    assert "0 event(s)" in capsys.readouterr().out


@pytest.mark.django_db
def test_events_replay_of_an_unknown_id_is_a_clear_error():
    with pytest.raises(CommandError, match="no outbox event"):
        call_command("events", "replay", str(uuid.uuid4()))


@pytest.mark.django_db
def test_relay_command_dispatches_due_events(recorder, capsys):
    event = OrderPlaced(order_id=uuid.uuid4(), amount=1)
    bus.publish(event)  # no commit hook runs inside the test transaction
    _make_due(event.id)
    call_command("events", "relay", "--once")
    assert "dispatched 1 event(s)" in capsys.readouterr().out
    assert len(recorder.seen) == 1
