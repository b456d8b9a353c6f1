"""Event base classes: domain events, integration events and commands.

Plain Python on purpose (no Django): events are serialised into the outbox and
onto Celery. Each concrete event declares a versioned name such as
``security.UserCreated`` v1; the registry maps ``(name, version)`` back to the
class when a row is read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import functools
import json
import re
import types
import typing
import uuid
from collections.abc import Callable
from typing import Any, ClassVar, Self

import orjson

_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[A-Z][A-Za-z0-9]*$")
_REGISTRY: dict[tuple[str, int], type[Event]] = {}


class EventKind(enum.StrEnum):
    DOMAIN = "domain"
    INTEGRATION = "integration"
    COMMAND = "command"


class UnknownEventError(LookupError):
    pass


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Event:
    """Something that happened (or, for a command, that should happen)."""

    name: ClassVar[str]
    version: ClassVar[int] = 1
    kind: ClassVar[EventKind]

    id: uuid.UUID = dataclasses.field(default_factory=uuid.uuid4)
    occurred_at: dt.datetime = dataclasses.field(default_factory=_now)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            return  # an abstract kind such as DomainEvent
        if not _NAME.match(cls.name):
            raise ValueError(f"event name {cls.name!r} must look like 'context.EventName'")
        if not isinstance(cls.version, int) or cls.version < 1:
            raise ValueError(f"event {cls.name} needs a positive integer version")
        key = (cls.name, cls.version)
        existing = _REGISTRY.get(key)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"event {cls.name} v{cls.version} is already declared by {existing}")
        _REGISTRY[key] = cls

    @property
    def key(self) -> str:
        return f"{self.name}.v{self.version}"

    def payload(self) -> dict[str, Any]:
        """The event's own fields as JSON-compatible values."""
        # Round-trip through json so a value JSON cannot hold fails at publish time.
        text = self.payload_json()
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return json.loads(text)  # integers beyond 64 bits (see payload_json)

    def payload_json(self) -> str:
        """``payload()`` as JSON text, serialised once (what the outbox stores)."""
        data = {name: getattr(self, name) for name in _payload_fields(type(self))}
        # orjson writes UUIDs, datetimes (ISO 8601, as ``isoformat``) and enums itself and
        # asks ``_encode`` for the rest; several times cheaper than json on every publish.
        try:
            return orjson.dumps(data, default=_encode, option=orjson.OPT_NON_STR_KEYS).decode()
        except orjson.JSONEncodeError as error:
            if "64-bit" in str(error):
                # JSON holds integers of any size; orjson only 64-bit ones.
                return json.dumps(data, default=_encode)
            raise TypeError(str(error.__cause__ or error)) from None

    @classmethod
    def from_payload(
        cls, *, id: uuid.UUID, occurred_at: dt.datetime, payload: dict[str, Any]
    ) -> Self:
        decoders = _decoders(cls)
        values = {}
        for key, value in payload.items():
            decode = decoders.get(key)
            values[key] = value if decode is None or value is None else decode(value)
        return cls(id=id, occurred_at=occurred_at, **values)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DomainEvent(Event):
    kind: ClassVar[EventKind] = EventKind.DOMAIN


@dataclasses.dataclass(frozen=True, kw_only=True)
class IntegrationEvent(Event):
    kind: ClassVar[EventKind] = EventKind.INTEGRATION


@dataclasses.dataclass(frozen=True, kw_only=True)
class Command(Event):
    kind: ClassVar[EventKind] = EventKind.COMMAND


def event_key(name: str, version: int) -> str:
    return f"{name}.v{version}"


def event_class(name: str, version: int) -> type[Event]:
    try:
        return _REGISTRY[(name, version)]
    except KeyError:
        raise UnknownEventError(f"no event class declares {name} v{version}") from None


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def _payload_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in ("id", "occurred_at"))


@functools.cache
def _decoders(cls: type) -> dict[str, Callable[[Any], Any] | None]:
    """Each field's decoder (None: the JSON value as it is), worked out once per class."""
    return {name: _decoder(hint) for name, hint in _type_hints(cls).items()}


def _encode(value: Any) -> Any:
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | frozenset | set):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable in an event payload")


def _decoder(hint: Any) -> Callable[[Any], Any] | None:
    # Optional[X] / X | None: decode as X.
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else hint
    if hint is uuid.UUID:
        return uuid.UUID
    if hint is decimal.Decimal:
        return decimal.Decimal
    if hint is dt.datetime:
        return dt.datetime.fromisoformat
    if hint is dt.date:
        return dt.date.fromisoformat
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint
    if typing.get_origin(hint) is tuple:
        return tuple
    return None
