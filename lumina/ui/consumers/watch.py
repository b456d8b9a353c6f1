"""Noticing, within a second, that an open socket's access may have changed.

One task per event loop reads ``security.api.access_generation()`` every
``POLL_SECONDS`` (from memory; from the database at most once a second per process).
When it moves (a token revoked, a user deactivated, a role, grant or policy changed, in
any process), when it cannot be read, and every ``FULL_RECHECK_SECONDS`` regardless (a
token that expired or an object deleted moves no generation), every socket on that loop
is told through ``access_changed()`` and decides its access again in its own way. A
thousand idle sockets cost one cheap poll.

``Batch`` lets sockets whose check is synchronous run their checks together, in one
thread hop, rather than one hop each.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

import structlog

from lumina.kernel.concurrency import run_sync
from lumina.security.api import access_generation

logger = structlog.get_logger(__name__)

POLL_SECONDS = 0.2
FULL_RECHECK_SECONDS = 30.0


class Watcher(Protocol):
    def access_changed(self) -> None: ...


class _Watch:
    def __init__(self) -> None:
        self.watchers: weakref.WeakSet[Watcher] = weakref.WeakSet()
        self.task: asyncio.Task | None = None

    async def run(self) -> None:
        seen = await _generation()
        full_at = time.monotonic()
        while self.watchers:
            await asyncio.sleep(POLL_SECONDS)
            now = await _generation()
            due = time.monotonic() - full_at >= FULL_RECHECK_SECONDS
            if now is not None and now == seen and not due:
                continue
            seen, full_at = now, time.monotonic()  # unknown counts as changed
            for watcher in list(self.watchers):
                watcher.access_changed()


async def _generation() -> object | None:
    try:
        return await run_sync(access_generation)
    except Exception:
        logger.warning("access generation unreadable", exc_info=True)
        return None


_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watch] = weakref.WeakKeyDictionary()


def watch(watcher: Watcher) -> None:
    """Call ``watcher.access_changed()`` whenever access may have changed."""
    loop = asyncio.get_running_loop()
    state = _watches.get(loop)
    if state is None:
        state = _watches[loop] = _Watch()
    state.watchers.add(watcher)
    if state.task is None or state.task.done():
        state.task = loop.create_task(state.run(), name="lumina-access-watch")


def unwatch(watcher: Watcher) -> None:
    for state in list(_watches.values()):
        state.watchers.discard(watcher)


Item = TypeVar("Item")
Result = TypeVar("Result")


class Batch(Generic[Item, Result]):
    """Sockets' synchronous checks, run together in one thread hop on the next loop turn.

    ``add(item)`` marks one for checking; ``check(item)`` runs in the thread given (an
    exception counts as ``failed``), then ``apply(item, result)`` back on the loop.
    """

    def __init__(
        self,
        check: Callable[[Item], Result],
        apply: Callable[[Item, Result], None],
        *,
        failed: Result,
        in_thread: Callable[[Callable], Callable[..., Awaitable]],
    ) -> None:
        self.check, self.apply, self.failed = check, apply, failed
        self.in_thread = in_thread
        self.pending: dict[Item, None] = {}
        self.task: asyncio.Task | None = None

    def add(self, item: Item) -> None:
        self.pending[item] = None
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.task = loop.create_task(self._run(), name="lumina-access-recheck")

    def discard(self, item: Item) -> None:
        self.pending.pop(item, None)

    async def _run(self) -> None:
        while self.pending:
            items, self.pending = list(self.pending), {}
            results = await self.in_thread(self._check_all)(items)
            for item, result in zip(items, results, strict=True):
                try:
                    self.apply(item, result)
                except Exception:
                    logger.exception("access re-check could not be applied")

    def _check_all(self, items: list[Item]) -> list[Result]:
        results = []
        for item in items:
            try:
                results.append(self.check(item))
            except Exception:
                logger.exception("access re-check failed")
                results.append(self.failed)
        return results
