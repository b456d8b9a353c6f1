"""The event bus: ``publish`` into the outbox, ``subscribe`` handlers, deliver after commit.

``publish`` writes an outbox row inside the caller's transaction and asks the
configured transport to deliver it once that transaction commits. A rolled-back
transaction takes its rows, and so its events, with it. Delivery runs each
handler in its own savepoint and records it in ``ProcessedEvent``, so a handler
that already succeeded is never run again for the same event; a failing handler
leaves the row pending with its attempts, last error and the time of its next
try (exponential backoff with jitter), until it succeeds or the attempts run out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import Protocol

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from lumina.kernel.events import Event, event_class, event_key
from lumina.kernel.models import OutboxEvent, ProcessedEvent

logger = structlog.get_logger(__name__)

Handler = Callable[[Event], None]

# How long a freshly published event belongs to its commit-time dispatch before the
# relay treats it as stranded (a crash between commit and dispatch, a broker outage).
DISPATCH_GRACE = dt.timedelta(seconds=30)
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 3600.0


@dataclasses.dataclass(frozen=True)
class Subscription:
    handler: Handler
    handler_id: str


_subscriptions: dict[str, list[Subscription]] = defaultdict(list)


def subscribe(*event_types: type[Event]) -> Callable[[Handler], Handler]:
    """Register the decorated function as a handler of ``event_types``.

    Handlers must be importable at start-up (a context's ``handlers.py``, imported
    from its AppConfig.ready) so the web process and workers know the same set.
    """

    def register(handler: Handler) -> Handler:
        handler_id = f"{handler.__module__}.{handler.__qualname__}"
        for event_type in event_types:
            subs = _subscriptions[event_key(event_type.name, event_type.version)]
            if all(s.handler_id != handler_id for s in subs):
                subs.append(Subscription(handler, handler_id))
        return handler

    return register


def unsubscribe(handler: Handler) -> None:
    for subs in _subscriptions.values():
        subs[:] = [s for s in subs if s.handler is not handler]


def subscriptions(key: str) -> list[Subscription]:
    return list(_subscriptions.get(key, ()))


class _CommitBatch(threading.local):
    """Ids published in this thread whose transaction has not been handed over yet.

    Every publish registers the same flush with ``on_commit``; the first to run after
    the commit hands the whole batch to the transport, the rest find it empty. Ids of a
    rolled-back transaction can linger here until the next flush: their rows are gone,
    so delivery skips them.
    """

    def __init__(self) -> None:
        self.ids: list[uuid.UUID] = []

    def flush(self) -> None:
        ids, self.ids = self.ids, []
        if ids:
            transport().dispatch(ids)


_batch = _CommitBatch()


def publish(event: Event) -> None:
    """Record ``event`` in the outbox; it is delivered after the current transaction commits."""
    OutboxEvent.objects.create(
        id=event.id,
        name=event.name,
        version=event.version,
        kind=event.kind.value,
        payload=event.payload(),
        occurred_at=event.occurred_at,
        next_attempt_at=timezone.now() + DISPATCH_GRACE,
    )
    _batch.ids.append(event.id)
    transaction.on_commit(_batch.flush)


@cache
def _transport_for(path: str) -> Transport:
    return import_string(path)()


def transport() -> Transport:
    return _transport_for(settings.LUMINA_EVENT_TRANSPORT)


class Transport(Protocol):
    """Carries event ids from the publishing process to whoever runs the handlers."""

    def dispatch(self, event_ids: Sequence[uuid.UUID]) -> None: ...


def backoff(attempts: int) -> dt.timedelta:
    """Exponential backoff with jitter: 1–2 s, 2–4 s, 4–8 s … capped at an hour."""
    ceiling = min(BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_CAP_SECONDS)
    return dt.timedelta(seconds=random.uniform(ceiling / 2, ceiling))  # noqa: S311 (jitter, not a secret)


def deliver(event_id: uuid.UUID) -> OutboxEvent | None:
    """Run the outstanding handlers of one pending event; return its row, or None if skipped."""
    rows = deliver_many([event_id])
    return rows[0] if rows else None


def deliver_many(event_ids: Sequence[uuid.UUID]) -> list[OutboxEvent]:
    """Run the outstanding handlers of these pending events, in one transaction.

    Rows are locked with SKIP LOCKED, so concurrent deliverers never run the same event
    at once; rows another process holds, already delivered or never committed are
    skipped. Each handler runs in its own savepoint, so one failure touches nothing
    else; one commit for the batch is what makes delivery cheap.
    """
    with transaction.atomic():
        rows = list(
            OutboxEvent.objects.select_for_update(skip_locked=True)
            .filter(pk__in=list(event_ids), status=OutboxEvent.Status.PENDING)
            .order_by("created_at")
        )
        if not rows:
            return []
        done: dict[uuid.UUID, set[str]] = defaultdict(set)
        for event_id, handler in ProcessedEvent.objects.filter(
            event_id__in=[row.id for row in rows]
        ).values_list("event_id", "handler"):
            done[event_id].add(handler)
        for row in rows:
            _run_handlers(row, done[row.id])
        OutboxEvent.objects.bulk_update(rows, _DELIVERY_FIELDS)
    return rows


_DELIVERY_FIELDS = ["attempts", "last_error", "status", "next_attempt_at", "delivered_at"]


def _run_handlers(row: OutboxEvent, done: set[str]) -> None:
    errors: list[str] = []
    try:
        event = event_class(row.name, row.version).from_payload(
            id=row.id, occurred_at=row.occurred_at, payload=row.payload
        )
    except Exception as exc:  # an unknown or undecodable event is a delivery failure too
        errors.append(f"decode: {type(exc).__name__}: {exc}")
        event = None
    if event is not None:
        for sub in subscriptions(row.key):
            if sub.handler_id in done:
                continue
            try:
                with transaction.atomic():
                    sub.handler(event)
                    ProcessedEvent.objects.create(event_id=row.id, handler=sub.handler_id)
            except Exception as exc:
                logger.exception(
                    "event handler failed",
                    event_id=str(row.id),
                    event_name=row.key,
                    handler=sub.handler_id,
                )
                errors.append(f"{sub.handler_id}: {type(exc).__name__}: {exc}")

    now = timezone.now()
    row.attempts += 1
    if errors:
        row.last_error = "\n".join(errors)[:8000]
        if row.attempts >= settings.LUMINA_EVENT_MAX_ATTEMPTS:
            row.status = OutboxEvent.Status.FAILED
        else:
            row.next_attempt_at = now + backoff(row.attempts)
    else:
        row.status = OutboxEvent.Status.DELIVERED
        row.delivered_at = now
        row.last_error = ""


def claim_due_event_ids(*, limit: int = 500) -> list[uuid.UUID]:
    """Take up to ``limit`` due pending events and push their next try past the grace.

    The claim is what keeps relays from piling up duplicates: an event handed to a busy
    worker queue is not handed over again on the next pass unless it is still pending
    once the grace has passed. ``SKIP LOCKED`` lets several relays run side by side.
    """
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            OutboxEvent.objects.select_for_update(skip_locked=True)
            .filter(status=OutboxEvent.Status.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at")
            .values_list("id", flat=True)[:limit]
        )
        if ids:
            OutboxEvent.objects.filter(pk__in=ids).update(next_attempt_at=now + DISPATCH_GRACE)
    return ids


def relay(*, limit: int = 500) -> int:
    """Hand every due pending event to the transport again; return how many."""
    ids = claim_due_event_ids(limit=limit)
    if ids:
        transport().dispatch(ids)
    return len(ids)


def replay(event_ids: Iterable[uuid.UUID] | None = None) -> list[OutboxEvent]:
    """Make failed (or the given) events pending again and deliver them now, in this process."""
    rows = OutboxEvent.objects.exclude(status=OutboxEvent.Status.DELIVERED)
    if event_ids is not None:
        rows = rows.filter(pk__in=list(event_ids))
    else:
        rows = rows.filter(status=OutboxEvent.Status.FAILED)
    ids = list(rows.values_list("id", flat=True))
    OutboxEvent.objects.filter(pk__in=ids).update(
        status=OutboxEvent.Status.PENDING, next_attempt_at=timezone.now()
    )
    return deliver_many(ids)
