"""Named generation counters: how one process tells every other that a cache went stale.

A writer calls ``bump(name)`` inside the transaction that makes the change. One UPSERT
gives the counter's row a new random value, so other processes can see the new value
exactly when they can see the change, and never if the transaction rolls back. The
writing process sees a new value at once, and again on commit, so its caches never lag.

Readers call ``current(name)`` on their hot path and compare the value with the one
their cache was filled under. It answers from memory: a snapshot of every counter,
read with one query at most once per ``STALENESS_SECONDS`` per process. The snapshot's
age counts from before its query starts, so a change committed at time t is seen by
every process from t + ``STALENESS_SECONDS`` on. The database is the only thing the
processes share: it works without Redis and through connection poolers (ADR 0009).

When the snapshot is too old, the first caller re-reads it (others wait for that one
query). A caller on an event loop never waits or queries: it gets Django's
``SynchronousOnlyOperation``, exactly as for any database access there, which
``kernel.concurrency.run_sync`` answers by repeating the call in a thread. When the
database cannot be read, ``current`` returns None: the caller must not trust its caches.
"""

from __future__ import annotations

import threading
import time
import uuid

import structlog
from django.db import connection, transaction

from lumina.kernel.concurrency import refuse_on_event_loop
from lumina.kernel.models import Generation

logger = structlog.get_logger(__name__)

# The promise: a change reaches every process's caches within this many seconds.
STALENESS_SECONDS = 1.0

# What ``current`` returns: the committed value and this process's own bumps. Only
# equality means anything.
Value = tuple[uuid.UUID | None, int]
_UNBUMPED: Value = (None, 0)

_TABLE = Generation._meta.db_table
_UPSERT = (
    f"INSERT INTO {_TABLE} (name, value) VALUES (%s, gen_random_uuid()) "  # noqa: S608
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
)


class _Snapshot:
    __slots__ = ("taken_at", "values", "versions")

    def __init__(
        self, values: dict[str, uuid.UUID], local: dict[str, int], taken_at: float
    ) -> None:
        self.values = values
        self.taken_at = taken_at
        self.versions: dict[str, Value] = {
            name: (values.get(name), local.get(name, 0)) for name in values.keys() | local.keys()
        }


_local: dict[str, int] = {}
_snapshot = _Snapshot({}, _local, float("-inf"))
_lock = threading.Lock()
# After a failed read, callers get None without a query until then (monotonic seconds).
_retry_at = float("-inf")


def current(name: str) -> Value | None:
    """The generation of ``name`` as this process knows it, at most ``STALENESS_SECONDS``
    old; None when it cannot be known (the database is unreachable)."""
    snapshot = _snapshot
    if time.monotonic() - snapshot.taken_at > STALENESS_SECONDS:
        snapshot = _refresh()
        if snapshot is None:
            return None
    return snapshot.versions.get(name, _UNBUMPED)


def bump(name: str) -> None:
    """Mark what every process cached under ``name`` as stale once the current
    transaction commits (at once in this process). Call it inside that transaction,
    after the change: the row stays locked until commit, so keep the rest short."""
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT, [name])
    _bump_here(name)
    # Again after commit: drops what this process cached in between from the state
    # before the commit, which its other threads could still read.
    transaction.on_commit(lambda: _bump_here(name))


def forget() -> None:
    """Drop the snapshot so that the next ``current`` reads the database (tests, benchmarks)."""
    global _snapshot, _retry_at
    with _lock:
        _snapshot = _Snapshot({}, _local, float("-inf"))
        _retry_at = float("-inf")


def _bump_here(name: str) -> None:
    global _snapshot
    with _lock:
        _local[name] = _local.get(name, 0) + 1
        _snapshot = _Snapshot(_snapshot.values, _local, _snapshot.taken_at)


def _refresh() -> _Snapshot | None:
    global _snapshot, _retry_at
    if time.monotonic() < _retry_at:
        return None
    refuse_on_event_loop("Reading generations")
    with _lock:
        snapshot = _snapshot
        if time.monotonic() - snapshot.taken_at <= STALENESS_SECONDS:
            return snapshot  # another thread has just read it
        taken_at = time.monotonic()
        try:
            values = _read()
        except Exception:  # whatever the reason, the caches cannot be trusted
            _retry_at = time.monotonic() + STALENESS_SECONDS
            logger.warning("generations unreadable; caches are bypassed", exc_info=True)
            return None
        _snapshot = _Snapshot(values, _local, taken_at)
        return _snapshot


def _read() -> dict[str, uuid.UUID]:
    query = Generation.objects.values_list("name", "value")
    if connection.in_atomic_block:
        # A savepoint, so that a failed read does not break the caller's transaction.
        with transaction.atomic():
            return dict(query)
    return dict(query)
