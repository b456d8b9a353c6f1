"""Noticing, within a second, that an open connection's access changed.

One task per event loop reads ``security.api.access_generation()`` every
``POLL_SECONDS``; when it moves (a token revoked, a user deactivated, a role, grant or
policy changed, in any process), every connection on that loop checks its credentials
and subscriptions again. The generation is read from memory, and from the database at
most once a second per process, so a thousand idle connections cost one cheap poll.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Protocol

import structlog

from lumina.kernel.concurrency import run_sync
from lumina.security.api import access_generation

logger = structlog.get_logger(__name__)

POLL_SECONDS = 0.2


class Watcher(Protocol):
    def access_changed(self) -> None: ...


class _Watch:
    def __init__(self) -> None:
        self.watchers: weakref.WeakSet[Watcher] = weakref.WeakSet()
        self.task: asyncio.Task | None = None

    async def run(self) -> None:
        seen = await _generation()
        while self.watchers:
            await asyncio.sleep(POLL_SECONDS)
            now = await _generation()
            if now is None or now != seen:  # unknown counts as changed
                for watcher in list(self.watchers):
                    watcher.access_changed()
            seen = now


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
        state.task = loop.create_task(state.run(), name="lumina-realtime-access-watch")


def unwatch(watcher: Watcher) -> None:
    for state in list(_watches.values()):
        state.watchers.discard(watcher)
