"""The usage ledger's writer: ``usage_submit`` buffers in memory, a thread writes in batches.

The hot path only appends to a deque. A daemon thread, started by the first submit,
writes whatever is buffered every ``FLUSH_INTERVAL`` seconds (sooner once
``BATCH_SIZE`` entries wait): one transaction per batch copies the ledger rows in and
publishes one ``UsageRecorded`` per row with one outbox COPY. A failed write puts the
batch back at the head of the buffer and the thread retries with exponential backoff,
so nothing is lost while the process lives; only an overflowing buffer drops entries,
and it says so in the log. ``usage_flush`` writes synchronously (tests, shutdown).
"""

from __future__ import annotations

import atexit
import dataclasses
import datetime as dt
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable

import structlog
from django.conf import settings
from django.db import (
    DataError,
    IntegrityError,
    close_old_connections,
    connection,
    transaction,
)
from django.utils import timezone
from psycopg.types.json import Jsonb

from lumina.kernel.bus import publish_many
from lumina.kernel.database import insert_rows
from lumina.kernel.events import Event
from lumina.providers.events.usage import UsageRecorded
from lumina.providers.models.usage import UsageRecord
from lumina.providers.types import UsageEntry, UsageStatus

logger = structlog.get_logger(__name__)

BATCH_SIZE = 200  # entries per transaction, and the backlog that wakes the writer early
# Seconds between writes while entries trickle in: each write has a fixed cost of a few
# CPU-ms, and a crash loses at most this much buffered usage (budgets are not affected).
FLUSH_INTERVAL = 0.5
MAX_BUFFERED = 100_000  # beyond this (a long database outage) new entries are dropped
RETRY_CAP_SECONDS = 30.0
# Months the writer creates partitions for on demand; rows outside go to the DEFAULT
# partition (a wrong clock must not create hundreds of tables).
PARTITION_MONTHS_BACK = 36
PARTITION_MONTHS_AHEAD = 2
_OVERFLOW_LOG_INTERVAL = 5.0
_STRING_LIMITS = {
    "request_id": 200,
    "operation": 32,
    "requested_model": 255,
    "provider_name": 64,
    "model": 200,
    "error_code": 100,
}

_buffer: deque[UsageEntry] = deque()
_events: deque[Event] = deque()  # other events to publish with the next batch
_wake = threading.Event()
_flush_lock = threading.Lock()  # one writer at a time: the thread or usage_flush
_start_lock = threading.Lock()
_writer: _Writer | None = None
_ready_months: set[dt.date] = set()
_suspect_ids: set[uuid.UUID] = set()  # ids of batches whose commit may have happened
_overflow = {"dropped": 0, "logged_at": 0.0}


def usage_submit(entry: UsageEntry) -> None:
    """Queue one request's usage for the ledger: O(1), no I/O, safe from any thread or loop."""
    if len(_buffer) >= MAX_BUFFERED:
        _drop(entry)
        return
    _buffer.append(entry)
    if _writer is None:
        _start_writer()
    elif len(_buffer) >= BATCH_SIZE:
        _wake.set()


def usage_event_submit(event: Event) -> None:
    """Queue an event to be published with the next batch (off the hot path, best effort)."""
    _events.append(event)
    if _writer is None:
        _start_writer()
    elif len(_events) >= BATCH_SIZE:
        _wake.set()  # else the next timed flush takes it: a wake per event costs a whole batch


def usage_flush() -> int:
    """Write everything buffered now, in this thread; return how many entries were written.

    Raises if the database refuses; the entries then stay buffered for the next try.
    """
    written = 0
    with _flush_lock:
        while _buffer or _events:
            batch = [_buffer.popleft() for _ in range(min(BATCH_SIZE, len(_buffer)))]
            events = [_events.popleft() for _ in range(len(_events))]
            try:
                written += _write(batch, events)
            except BaseException:
                _buffer.extendleft(reversed(batch))
                _events.extendleft(reversed(events))
                raise
    return written


def usage_buffered() -> int:
    """Entries waiting for the writer."""
    return len(_buffer)


def usage_writer_stop(*, flush: bool = True, timeout: float = 5.0) -> None:
    """Stop the background writer (the next submit starts a new one), then flush if asked."""
    global _writer
    with _start_lock:
        writer, _writer = _writer, None
    if writer is not None:
        writer.stop(timeout)
    if flush:
        usage_flush()


def usage_partition_ensure(*, month: dt.date) -> str:
    """Create the ledger partition of ``month`` if it is missing; return its name."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT providers_usage_partition(%s)", [month.replace(day=1)])
        return cursor.fetchone()[0]


# -- the writer thread -------------------------------------------------------------------


class _Writer(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="usage-ledger-writer", daemon=True)
        self._stopping = threading.Event()

    def run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            if failures:
                # Back off, whatever the backlog: the database is what we wait for.
                delay = min(FLUSH_INTERVAL * 2 ** min(failures, 16), RETRY_CAP_SECONDS)
                self._stopping.wait(delay)
            else:
                _wake.wait(FLUSH_INTERVAL)
            _wake.clear()
            if self._stopping.is_set() or not (_buffer or _events):
                continue
            try:
                close_old_connections()
                usage_flush()
                if failures:
                    logger.info("usage ledger writes again", buffered=len(_buffer))
                failures = 0
            except Exception:
                failures += 1
                logger.warning(
                    "usage ledger write failed; entries stay buffered",
                    buffered=len(_buffer),
                    failures=failures,
                    exc_info=True,
                )
            finally:
                close_old_connections()
        connection.close()

    def stop(self, timeout: float) -> None:
        self._stopping.set()
        _wake.set()
        self.join(timeout)


def _start_writer() -> None:
    global _writer
    if not getattr(settings, "LUMINA_USAGE_WRITER_THREAD", True):
        return  # tests and one-shot commands write with usage_flush()
    with _start_lock:
        if _writer is None:
            _writer = _Writer()
            _writer.start()


def _shutdown() -> None:
    try:
        usage_writer_stop(flush=True)
    except Exception:
        logger.exception("usage ledger: final flush failed", lost=len(_buffer))


def _after_fork_in_child() -> None:
    # The parent's thread did not survive the fork, and its buffer is the parent's to write.
    global _writer, _flush_lock, _start_lock, _wake
    _writer = None
    _buffer.clear()
    _events.clear()
    _flush_lock = threading.Lock()
    _start_lock = threading.Lock()
    _wake = threading.Event()


atexit.register(_shutdown)
os.register_at_fork(after_in_child=_after_fork_in_child)


def _drop(entry: UsageEntry) -> None:
    _overflow["dropped"] += 1
    now = time.monotonic()
    if now - _overflow["logged_at"] >= _OVERFLOW_LOG_INTERVAL:
        _overflow["logged_at"] = now
        logger.error(
            "usage ledger buffer is full: usage records are being dropped",
            dropped_total=_overflow["dropped"],
            buffered=len(_buffer),
            entry_id=str(entry.id),
        )


# -- one batch ---------------------------------------------------------------------------


def _write(batch: list[UsageEntry], events: list[Event]) -> int:
    """Insert one batch and publish its events in one transaction; return rows written."""
    try:
        return _write_batch(batch, events)
    except (DataError, IntegrityError):
        # A value the database refuses must not block the rest: write one by one.
        return _write_one_by_one(batch, events)
    except Exception:
        _suspect_ids.update(entry.id for entry in batch)  # the commit may have happened
        raise


def _write_one_by_one(batch: list[UsageEntry], events: list[Event]) -> int:
    written = _write_batch([], events)
    for entry in batch:
        try:
            written += _write_batch([entry], [])
        except (DataError, IntegrityError):
            # Retrying cannot help; the log line keeps the record for a person to replay.
            logger.exception("usage record refused by the database; dropped", entry=repr(entry))
            _suspect_ids.discard(entry.id)
    return written


def _write_batch(batch: list[UsageEntry], events: list[Event]) -> int:
    entries = [_normalised(entry) for entry in batch]
    with transaction.atomic():
        if _suspect_ids and entries:
            entries = _not_yet_stored(entries)
        if entries:
            _ensure_partitions(entry.occurred_at for entry in entries)
            _insert(entries)
        publish_many([*map(UsageRecorded.from_entry, entries), *events])
    _suspect_ids.difference_update(entry.id for entry in batch)
    return len(entries)


def _not_yet_stored(entries: list[UsageEntry]) -> list[UsageEntry]:
    suspects = [entry.id for entry in entries if entry.id in _suspect_ids]
    if not suspects:
        return entries
    stored = set(UsageRecord.objects.filter(id__in=suspects).values_list("id", flat=True))
    if stored:
        logger.info("usage records already stored by an unconfirmed commit", count=len(stored))
    return [entry for entry in entries if entry.id not in stored]


def _normalised(entry: UsageEntry) -> UsageEntry:
    moment = entry.occurred_at
    if not isinstance(moment, dt.datetime):
        moment = timezone.now()
    elif timezone.is_naive(moment):
        moment = moment.replace(tzinfo=dt.UTC)
    changes: dict = {}
    if moment is not entry.occurred_at:
        changes["occurred_at"] = moment
    for name, limit in _STRING_LIMITS.items():
        value = getattr(entry, name)
        if len(value) > limit:
            changes[name] = value[:limit]
    return dataclasses.replace(entry, **changes) if changes else entry


_COPY_COLUMNS = (
    "id", "occurred_at", "request_id", "operation", "status", "stream", "requested_model",
    "user_id", "token_id", "provider_id", "provider_name", "deployment_id", "model",
    "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
    "reasoning_tokens", "estimated", "cost", "attempts", "latency_ms", "ttft_ms", "error_code",
    "attempt_log",
)  # fmt: skip


def _insert(entries: list[UsageEntry]) -> None:
    """COPY the rows in: several times cheaper in CPU than an ORM bulk insert."""
    insert_rows(UsageRecord._meta.db_table, _COPY_COLUMNS, [_row(entry) for entry in entries])


def _row(entry: UsageEntry) -> tuple:
    usage = entry.usage
    return (
        entry.id,
        entry.occurred_at,
        entry.request_id,
        entry.operation,
        UsageStatus(entry.status).value,
        entry.stream,
        entry.requested_model,
        entry.user_id,
        entry.token_id,
        entry.provider_id,
        entry.provider_name,
        entry.deployment_id,
        entry.model,
        usage.input_tokens,
        usage.cached_input_tokens,
        usage.cache_write_tokens,
        usage.output_tokens,
        usage.reasoning_tokens,
        usage.estimated,
        entry.cost,
        entry.attempts,
        entry.latency_ms,
        entry.ttft_ms,
        entry.error_code,
        Jsonb(list(entry.attempt_log)),
    )


def _month(moment: dt.datetime | dt.date) -> dt.date:
    if isinstance(moment, dt.datetime):
        moment = moment.astimezone(dt.UTC)
    return dt.date(moment.year, moment.month, 1)


def _add_months(month: dt.date, count: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + count
    return dt.date(index // 12, index % 12 + 1, 1)


def _ensure_partitions(moments: Iterable[dt.datetime]) -> None:
    """Make sure the months about to be written (and the next ones) have partitions."""
    current = _month(timezone.now())
    earliest = _add_months(current, -PARTITION_MONTHS_BACK)
    latest = _add_months(current, PARTITION_MONTHS_AHEAD)
    wanted = {_add_months(current, ahead) for ahead in range(PARTITION_MONTHS_AHEAD + 1)}
    wanted.update(month for month in map(_month, moments) if earliest <= month <= latest)
    missing = wanted - _ready_months
    if not missing:
        return
    for month in sorted(missing):
        usage_partition_ensure(month=month)
    # Remember them only once they are committed: a rolled-back batch takes them along.
    transaction.on_commit(lambda: _ready_months.update(missing))
