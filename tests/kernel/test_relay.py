"""The in-process relay thread and the ASGI lifespan that runs it."""

import asyncio
import time
import uuid

import pytest
from django.utils import timezone

from lumina.kernel import bus
from lumina.kernel.models import OutboxEvent
from lumina.kernel.relay import OutboxRelay
from tests.kernel.conftest import OrderPlaced


@pytest.mark.django_db(transaction=True)
def test_relay_thread_redelivers_due_events_until_stopped(recorder):
    event = OrderPlaced(order_id=uuid.uuid4(), amount=5)
    recorder.failures_left = 1
    bus.publish(event)  # autocommit: delivered at once, and fails once
    assert OutboxEvent.objects.get(pk=event.id).attempts == 1
    OutboxEvent.objects.filter(pk=event.id).update(next_attempt_at=timezone.now())

    relay = OutboxRelay(interval=0.05)
    relay.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not recorder.seen:
            time.sleep(0.05)
    finally:
        relay.stop()
    assert not relay.is_alive()
    assert [e.id for e in recorder.seen] == [event.id]
    assert OutboxEvent.objects.get(pk=event.id).status == OutboxEvent.Status.DELIVERED


def test_asgi_lifespan_starts_and_stops_the_relay(settings):
    from config.asgi import application
    from lumina.kernel.relay import relay_running

    settings.LUMINA_OUTBOX_RELAY_INTERVAL = 60
    settings.LUMINA_EVENT_TRANSPORT = "inprocess"
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent = []
    running_at_startup = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message["type"])
        if message["type"] == "lifespan.startup.complete":
            running_at_startup.append(relay_running())

    asyncio.run(application({"type": "lifespan"}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert running_at_startup == [True]
    assert not relay_running()


@pytest.mark.django_db
def test_a_relay_pass_claims_events_so_the_next_pass_does_not_resend_them(
    recording_transport,
):
    event = OrderPlaced(order_id=uuid.uuid4(), amount=1)
    bus.publish(event)  # inside the test transaction: no commit-time dispatch
    OutboxEvent.objects.filter(pk=event.id).update(next_attempt_at=timezone.now())

    assert bus.relay() == 1
    assert bus.relay() == 0  # claimed: still queued somewhere, not sent twice
    assert recording_transport.dispatched == [event.id]

    # Still pending once the claim runs out: stranded, so it is sent again.
    OutboxEvent.objects.filter(pk=event.id).update(next_attempt_at=timezone.now())
    assert bus.relay() == 1
    assert recording_transport.dispatched == [event.id, event.id]
