import dataclasses
import datetime as dt
import decimal
import uuid

import pytest

from lumina.kernel.events import (
    Command,
    DomainEvent,
    EventKind,
    IntegrationEvent,
    UnknownEventError,
    event_class,
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PriceChanged(IntegrationEvent):
    name = "testing.PriceChanged"
    version = 2

    model_id: uuid.UUID
    price: decimal.Decimal
    effective: dt.date
    note: str | None = None
    tags: tuple[str, ...] = ()


def test_payload_round_trips_typed_values_through_json():
    event = PriceChanged(
        model_id=uuid.uuid4(),
        price=decimal.Decimal("0.15"),
        effective=dt.date(2026, 1, 1),
        tags=("a", "b"),
    )
    payload = event.payload()
    assert payload["price"] == "0.15"
    assert payload["tags"] == ["a", "b"]

    again = event_class("testing.PriceChanged", 2).from_payload(
        id=event.id, occurred_at=event.occurred_at, payload=payload
    )
    assert again == event
    assert again.kind is EventKind.INTEGRATION
    assert again.key == "testing.PriceChanged.v2"


def test_payload_that_json_cannot_hold_is_refused_at_publish_time():
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Carrying(DomainEvent):
        name = "testing.Carrying"
        thing: object

    with pytest.raises(TypeError, match="not JSON-serialisable"):
        Carrying(thing=object()).payload()


def test_event_names_must_be_context_qualified():
    with pytest.raises(ValueError, match=r"context\.EventName"):

        @dataclasses.dataclass(frozen=True, kw_only=True)
        class Bad(Command):
            name = "NoContext"


def test_two_classes_cannot_claim_one_name_and_version():
    with pytest.raises(ValueError, match="already declared"):

        @dataclasses.dataclass(frozen=True, kw_only=True)
        class Impostor(IntegrationEvent):
            name = "testing.PriceChanged"
            version = 2


def test_unknown_event_lookup_fails_clearly():
    with pytest.raises(UnknownEventError, match=r"nothing\.Here v1"):
        event_class("nothing.Here", 1)
