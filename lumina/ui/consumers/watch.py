"""Re-checking open document sockets, so a revoked permission or token closes them.

One task per process looks at the security context's generation counters a few times a
second (from memory; ``kernel.generations``): when roles, grants, policies or tokens
changed anywhere, every open socket's access is decided again, in one thread. Without a
change they are re-checked every ``FULL_RECHECK_SECONDS`` anyway (a deactivated user, a
deleted document, an expired token).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol

import structlog

from lumina.kernel import generations
from lumina.ui.consumers.rooms import in_thread

logger = structlog.get_logger(__name__)

# What security bumps when roles, grants or policies change, and when tokens do.
WATCHED_GENERATIONS = ("security.authorization", "security.tokens")
INTERVAL_SECONDS = 0.2
FULL_RECHECK_SECONDS = 30.0


class Watched(Protocol):
    def recheck(self) -> tuple[int | None, bool]: ...

    def recheck_apply(self, code: int | None, edit: bool) -> None: ...


_watched: set[Watched] = set()
_task: asyncio.Task | None = None


def register(connection: Watched) -> None:
    global _task
    _watched.add(connection)
    if _task is None or _task.done():
        _task = asyncio.get_running_loop().create_task(_run())


def unregister(connection: Watched) -> None:
    _watched.discard(connection)


def _generations() -> tuple:
    return tuple(generations.current(name) for name in WATCHED_GENERATIONS)


def _recheck_all(connections: list[Watched]) -> list[tuple[int | None, bool]]:
    results = []
    for connection in connections:
        try:
            results.append(connection.recheck())
        except Exception:
            logger.exception("document access re-check failed")
            results.append((None, False))  # keep it open, read only, until the next check
    return results


async def _run() -> None:
    seen = await in_thread(_generations)()
    full_at = time.monotonic()
    while _watched:
        await asyncio.sleep(INTERVAL_SECONDS)
        with contextlib.suppress(Exception):
            now = await in_thread(_generations)()
            due = time.monotonic() - full_at >= FULL_RECHECK_SECONDS
            # None: the database cannot be read, so nothing is known to have changed.
            if (now == seen or None in now) and not due:
                continue
            seen, full_at = now, time.monotonic()
            connections = list(_watched)
            results = await in_thread(_recheck_all)(connections)
            for connection, (code, edit) in zip(connections, results, strict=True):
                if connection in _watched:
                    connection.recheck_apply(code, edit)
