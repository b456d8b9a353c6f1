"""Kernel test fixtures: a test event and a recording handler subscribed to it."""

import dataclasses
import uuid

import pytest

from lumina.kernel import bus
from lumina.kernel.events import DomainEvent


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderPlaced(DomainEvent):
    name = "testing.OrderPlaced"
    version = 1

    order_id: uuid.UUID
    amount: int


class Recorder:
    """A handler that records what it saw and fails on demand."""

    def __init__(self):
        self.seen: list[OrderPlaced] = []
        self.failures_left = 0

    def __call__(self, event: OrderPlaced) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("downstream unavailable")
        self.seen.append(event)


@pytest.fixture
def recorder():
    handler = Recorder()

    def on_order_placed(event):
        handler(event)

    bus.subscribe(OrderPlaced)(on_order_placed)
    yield handler
    bus.unsubscribe(on_order_placed)


class RecordingTransport:
    """A transport that only notes what it was handed (to test the relay itself)."""

    dispatched: list[uuid.UUID] = []

    def dispatch(self, event_ids) -> None:
        self.dispatched.extend(event_ids)


@pytest.fixture
def recording_transport(settings):
    RecordingTransport.dispatched = []
    settings.LUMINA_EVENT_TRANSPORT = "tests.kernel.conftest.RecordingTransport"
    return RecordingTransport
