"""Generation counters: bumped in the writer's transaction, read from memory within a bound.

tests/security/test_cross_process.py drives the same mechanism with real processes.
"""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from django.core.exceptions import SynchronousOnlyOperation
from django.db import OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext

from lumina.kernel import generations
from lumina.kernel.concurrency import run_sync
from lumina.kernel.models import Generation


def committed_value(name: str) -> uuid.UUID | None:
    """The value another process would read: through a connection of its own."""
    found: list[uuid.UUID | None] = []

    def read() -> None:
        try:
            found.append(
                Generation.objects.filter(name=name).values_list("value", flat=True).first()
            )
        finally:
            connection.close()

    reader = threading.Thread(target=read)
    reader.start()
    reader.join()
    return found[0]


@pytest.fixture
def name() -> str:
    return f"tests.{uuid.uuid4().hex[:8]}"


@pytest.mark.django_db(transaction=True)
def test_a_bump_is_seen_here_at_once_and_elsewhere_only_once_committed(name):
    before = generations.current(name)
    with transaction.atomic():
        generations.bump(name)
        during = generations.current(name)
        assert during != before  # this process: at once
        assert committed_value(name) is None  # others: not before the commit
    assert committed_value(name) is not None
    assert generations.current(name) not in (before, during)  # again on commit


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_bump_leaves_nothing_for_other_processes(name):
    with transaction.atomic():
        generations.bump(name)
        transaction.set_rollback(True)
    assert committed_value(name) is None


@pytest.mark.django_db
def test_every_bump_is_a_new_value_never_a_count(name):
    seen = set()
    for _ in range(3):
        generations.bump(name)
        seen.add(Generation.objects.get(name=name).value)
    assert len(seen) == 3


@pytest.mark.django_db
def test_within_the_bound_reads_come_from_memory(name, monkeypatch):
    monkeypatch.setattr(generations, "STALENESS_SECONDS", 3600.0)
    generations.forget()
    generations.current(name)  # one read of the snapshot
    with CaptureQueriesContext(connection) as queries:
        values = {generations.current(name) for _ in range(1000)}
    assert len(queries) == 0
    assert len(values) == 1


@pytest.mark.django_db
def test_past_the_bound_one_query_reads_every_counter(name, monkeypatch):
    Generation.objects.create(name=name, value=uuid.uuid4())
    monkeypatch.setattr(generations, "STALENESS_SECONDS", 3600.0)
    generations.forget()
    first = generations.current(name)
    # Another process bumps; this one sees it once its snapshot is older than the bound.
    Generation.objects.filter(name=name).update(value=uuid.uuid4())
    assert generations.current(name) == first
    monkeypatch.setattr(generations, "STALENESS_SECONDS", 0.0)
    with CaptureQueriesContext(connection) as queries:
        moved = generations.current(name)
    assert moved != first
    reads = [query for query in queries if "kernel_generation" in query["sql"]]
    assert len(reads) == 1  # (inside this test's transaction, within a savepoint)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_an_event_loop_never_waits_for_a_read_it_hands_it_to_a_thread(name):
    generations.forget()
    with pytest.raises(SynchronousOnlyOperation):
        generations.current(name)  # on the loop: refused before any lock or query
    assert await run_sync(generations.current, name) is not None
    assert generations.current(name) is not None  # and now from memory, on the loop


@pytest.mark.django_db
def test_an_unreadable_database_means_unknown_not_stale(name, monkeypatch):
    def broken():
        raise OperationalError("the server closed the connection")

    generations.forget()
    monkeypatch.setattr(generations, "_read", broken)
    assert generations.current(name) is None
    monkeypatch.undo()
    generations.forget()
    assert generations.current(name) is not None


def test_async_test_helpers_are_not_left_running():
    # A guard for the test above: nothing of it keeps a loop alive in this thread.
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
