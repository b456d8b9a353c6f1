"""The event bus: ``publish`` into the outbox, ``subscribe`` handlers, deliver after commit.

``publish_many`` writes the events' outbox rows with one statement inside the caller's
transaction and asks the configured transport to deliver them once that transaction
commits; a rolled-back transaction takes its rows, and so its events, with it. Delivery
runs each handler in its own savepoint (a batch handler once for all its events of the
batch) and records ``ProcessedEvent`` rows in the same transaction, so a handler that
already succeeded is never run again for the same event; a failing handler leaves the
row pending with its attempts, last error and the time of its next try (exponential
backoff with jitter), until it succeeds or the attempts run out.

Publish hooks (``add_publish_hook``) see events at the moment they are published,
whatever the caller's transaction does next. They are for records that must outlive a
rollback, such as the security context's audit of refusals and failed sign-ins, which it
writes through a connection of its own. Ordinary delivery is unchanged: handlers still
see an event only once its transaction has committed.
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
from typing import Protocol, TypeVar

import structlog
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from lumina.kernel.database import insert_rows
from lumina.kernel.events import Event, event_class, event_key
from lumina.kernel.models import OutboxEvent, ProcessedEvent

logger = structlog.get_logger(__name__)

Handler = Callable[[Event], None]
BatchHandler = Callable[[list[Event]], None]  # see subscribe(batch=True)
PublishHook = Callable[[Sequence[Event]], None]
_H = TypeVar("_H", Handler, BatchHandler)

# How long a freshly published event belongs to its commit-time dispatch before the
# relay treats it as stranded (a crash between commit and dispatch, a broker outage).
DISPATCH_GRACE = dt.timedelta(seconds=30)
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 3600.0


@dataclasses.dataclass(frozen=True)
class Subscription:
    handler: Handler | BatchHandler
    handler_id: str
    batch: bool = False  # the handler takes a list of events


_subscriptions: dict[str, list[Subscription]] = defaultdict(list)
_publish_hooks: list[PublishHook] = []


def subscribe(*event_types: type[Event], batch: bool = False) -> Callable[[_H], _H]:
    """Register the decorated function as a handler of ``event_types``.

    Handlers must be importable at start-up (a context's ``handlers.py``, imported
    from its AppConfig.ready) so the web process and workers know the same set.

    With ``batch=True`` the handler takes a ``list`` of events: delivery calls it once
    per delivery batch with all of that batch's events it has not applied yet, in one
    savepoint. If that call raises, its effects are rolled back and it is called again
    once per event (a list of one), each in its own savepoint, so a bad event fails
    alone and the others go through. A batch handler must therefore have the same
    effect on a list as on its events one by one.
    """

    def register(handler: _H) -> _H:
        handler_id = f"{handler.__module__}.{handler.__qualname__}"
        for event_type in event_types:
            subs = _subscriptions[event_key(event_type.name, event_type.version)]
            if all(s.handler_id != handler_id for s in subs):
                subs.append(Subscription(handler, handler_id, batch))
        return handler

    return register


def unsubscribe(handler: Handler | BatchHandler) -> None:
    for subs in _subscriptions.values():
        subs[:] = [s for s in subs if s.handler is not handler]


def subscriptions(key: str) -> list[Subscription]:
    return list(_subscriptions.get(key, ()))


def add_publish_hook(hook: PublishHook) -> None:
    """Call ``hook(events)`` at every publish, before the outbox rows are written.

    The hook runs in the publisher's thread and must neither join nor depend on the
    publisher's transaction; an exception it raises is logged and does not stop the
    publish. Registering the same hook twice has no effect.
    """
    if hook not in _publish_hooks:
        _publish_hooks.append(hook)


def _run_publish_hooks(events: Sequence[Event]) -> None:
    for hook in _publish_hooks:
        try:
            hook(events)
        except Exception:
            logger.exception("publish hook failed", hook=getattr(hook, "__qualname__", repr(hook)))


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

_OUTBOX = OutboxEvent._meta.db_table
_OUTBOX_COLUMNS = (
    "id", "name", "version", "kind", "payload", "occurred_at",
    "status", "attempts", "last_error", "next_attempt_at",
)  # fmt: skip


def publish(event: Event) -> None:
    """Record ``event`` in the outbox; it is delivered after the current transaction commits."""
    publish_many([event])


def publish_many(events: Sequence[Event]) -> None:
    """Record ``events`` in the outbox with one statement; delivered after the current commit.

    The rows belong to the caller's transaction (outside one, the statement commits on
    its own), and the transaction's events go to the transport as one batch after the
    commit, in the order they were published.
    """
    if not events:
        return
    if _publish_hooks:
        _run_publish_hooks(events)
    pending, due = OutboxEvent.Status.PENDING.value, timezone.now() + DISPATCH_GRACE
    insert_rows(
        _OUTBOX,
        _OUTBOX_COLUMNS,
        [
            (
                event.id,
                event.name,
                event.version,
                event.kind.value,
                event.payload_json(),
                event.occurred_at,
                pending,
                0,
                "",
                due,
            )
            for event in events
        ],
    )
    _batch.ids.extend(event.id for event in events)
    transaction.on_commit(_batch.flush)


@cache
def _transport_for(name: str) -> Transport:
    from lumina.kernel.transports import TRANSPORTS

    known = TRANSPORTS.get(name)
    # Anything else is a dotted path to a Transport (tests and benchmarks bring their own).
    return known() if known is not None else import_string(name)()


def transport() -> Transport:
    """The transport ``LUMINA_EVENT_TRANSPORT`` names: ``inprocess`` or ``celery``."""
    return _transport_for(settings.LUMINA_EVENT_TRANSPORT)


class Transport(Protocol):
    """Carries event ids from the publishing process to whoever runs the handlers."""

    # Whether the web process must run the outbox relay thread (else beat runs the relay).
    relays_in_process: bool

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
    skipped. Each handler runs in its own savepoint (a batch handler once for all its
    events), so one failure touches nothing else; the ``ProcessedEvent`` rows of the
    handlers that succeeded are inserted with one statement at the end, and the rows'
    new states with one UPDATE for the delivered ones. One commit for the batch is what
    makes delivery cheap.
    """
    wanted = list(dict.fromkeys(event_ids))
    if not wanted:
        return []
    with transaction.atomic():
        rows = list(
            OutboxEvent.objects.select_for_update(skip_locked=True)
            .filter(pk__in=wanted, status=OutboxEvent.Status.PENDING)
            .order_by("created_at")
        )
        if not rows:
            return []
        # Rows of one transaction share created_at: keep the order they were published in.
        position = {str(event_id): index for index, event_id in enumerate(wanted)}
        rows.sort(key=lambda row: (row.created_at, position.get(str(row.id), 0)))
        if _nothing_to_run(rows):
            # Events no handler takes (an execution's outcome, most audit-only events):
            # no marks to read, no savepoint; they are delivered as they are.
            _record_outcome(rows, {})
            return rows
        try:
            # Marks inserted at the end, in one statement. A conflict there means someone
            # marked an event as applied while its handler ran (``costs_rebuild`` does):
            # the savepoint undoes every handler, and the batch runs again with each
            # handler's mark inside its own savepoint, where a conflict undoes that
            # handler alone.
            with transaction.atomic():
                errors = _Delivery(rows, mark_each=False).run()
        except IntegrityError:
            logger.info("event marked as applied during delivery; delivering one by one")
            errors = _Delivery(rows, mark_each=True).run()
        _record_outcome(rows, errors)
    return rows


def _nothing_to_run(rows: list[OutboxEvent]) -> bool:
    """No row has a handler, and every row names a known event (else decoding fails it)."""
    for row in rows:
        if _subscriptions.get(row.key):
            return False
        try:
            event_class(row.name, row.version)
        except Exception:
            return False
    return True


class _Delivery:
    """One pass over locked rows: which handlers are due, running them, marking them."""

    def __init__(self, rows: list[OutboxEvent], *, mark_each: bool) -> None:
        self.rows = rows
        self.mark_each = mark_each
        self.errors: dict[uuid.UUID, list[str]] = defaultdict(list)
        self.applied: list[tuple[uuid.UUID, str]] = []

    def run(self) -> dict[uuid.UUID, list[str]]:
        done = _applied_handlers([row.id for row in self.rows])
        batches: dict[str, tuple[Subscription, list[tuple[OutboxEvent, Event]]]] = {}
        for row in self.rows:
            due = [s for s in _subscriptions.get(row.key, ()) if (row.id, s.handler_id) not in done]
            try:
                cls = event_class(row.name, row.version)
                # Decoded once, and only when a handler is to see it.
                event = (
                    cls.from_payload(id=row.id, occurred_at=row.occurred_at, payload=row.payload)
                    if due
                    else None
                )
            except Exception as exc:  # an unknown or undecodable event is a delivery failure too
                self.errors[row.id].append(f"decode: {type(exc).__name__}: {exc}")
                continue
            for sub in due:
                if sub.batch:
                    batches.setdefault(sub.handler_id, (sub, []))[1].append((row, event))
                else:
                    self._run(sub, [(row, event)])
        for sub, items in batches.values():
            if not self._run(sub, items) and len(items) > 1:
                for item in items:  # one bad event must not hold back the others
                    self._run(sub, [item])
        if self.applied and not self.mark_each:
            _mark_applied(self.applied)
        return self.errors

    def _run(self, sub: Subscription, items: list[tuple[OutboxEvent, Event]]) -> bool:
        """Run one handler call in a savepoint; a per-event handler gets one item."""
        pairs = [(row.id, sub.handler_id) for row, _ in items]
        try:
            with transaction.atomic():
                if sub.batch:
                    sub.handler([event for _, event in items])
                else:
                    sub.handler(items[0][1])
                if self.mark_each:
                    _mark_applied(pairs)
        except Exception as exc:
            rows = [row for row, _ in items]
            if len(rows) > 1:
                logger.warning(
                    "batch event handler failed; retrying its events one by one",
                    handler=sub.handler_id,
                    events=len(rows),
                    exc_info=True,
                )
                return False
            logger.exception(
                "event handler failed",
                event_id=str(rows[0].id),
                event_name=rows[0].key,
                handler=sub.handler_id,
            )
            self.errors[rows[0].id].append(f"{sub.handler_id}: {type(exc).__name__}: {exc}")
            return False
        self.applied.extend(pairs)
        return True


def _applied_handlers(event_ids: list[uuid.UUID]) -> set[tuple[uuid.UUID, str]]:
    return set(
        ProcessedEvent.objects.filter(event_id__in=event_ids).values_list("event_id", "handler")
    )


def _mark_applied(pairs: list[tuple[uuid.UUID, str]]) -> None:
    """Record that these handlers applied these events (a duplicate raises IntegrityError)."""
    insert_rows(ProcessedEvent._meta.db_table, ("event_id", "handler"), pairs)


_DELIVERED = f"""
UPDATE {_OUTBOX}
SET status = %s, attempts = attempts + 1, delivered_at = %s, last_error = ''
WHERE id = ANY(%s)
"""  # noqa: S608 (the table name is a constant)


def _record_outcome(rows: list[OutboxEvent], errors: dict[uuid.UUID, list[str]]) -> None:
    """Write every row's new state: one UPDATE for the delivered, one per failing row."""
    now = timezone.now()
    delivered = []
    for row in rows:
        row.attempts += 1
        row_errors = errors.get(row.id)
        if not row_errors:
            row.status = OutboxEvent.Status.DELIVERED
            row.delivered_at = now
            row.last_error = ""
            delivered.append(row.id)
            continue
        row.last_error = "\n".join(row_errors)[:8000]
        if row.attempts >= settings.LUMINA_EVENT_MAX_ATTEMPTS:
            row.status = OutboxEvent.Status.FAILED
        else:
            row.next_attempt_at = now + backoff(row.attempts)
        OutboxEvent.objects.filter(pk=row.id).update(
            attempts=row.attempts,
            last_error=row.last_error,
            status=row.status,
            next_attempt_at=row.next_attempt_at,
        )
    if delivered:
        with connection.cursor() as cursor:
            cursor.execute(_DELIVERED, [OutboxEvent.Status.DELIVERED.value, now, delivered])


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
