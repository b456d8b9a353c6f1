"""Start-up and shutdown hooks of the contexts, run by the processes that host them.

A context registers its hooks from its ``AppConfig.ready()``::

    lifecycle.on_startup(start_something)                       # the web server only
    lifecycle.on_shutdown(close_connections)                    # web server and worker
    lifecycle.on_shutdown(close_sessions, where=(lifecycle.WEB,))

so the process entry points never reach into a context's internals. Who runs them:

* ``web``: the ASGI lifespan (``config.asgi``), which ``manage.py serve`` (uvicorn,
  ``lifespan="on"``) and any ASGI server speaking the lifespan protocol trigger;
* ``worker``: a Celery worker process (``config.celery``'s signal handlers).

Start-up hooks run in registration order (``INSTALLED_APPS`` order, the kernel first) and
a failing one fails the start. Shutdown hooks run in the reverse order, and a failing one
is logged without stopping the others. A hook may be a plain function or a coroutine
function: the async runners call a plain one in a worker thread (it may touch the
database), the sync runners run a coroutine function to completion on a fresh loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog
from asgiref.sync import sync_to_async

logger = structlog.get_logger(__name__)

WEB = "web"
WORKER = "worker"

Hook = Callable[[], Any] | Callable[[], Awaitable[Any]]


@dataclasses.dataclass(frozen=True)
class _Registered:
    hook: Hook
    where: frozenset[str]

    @property
    def name(self) -> str:
        return f"{self.hook.__module__}.{self.hook.__qualname__}"


_startup: dict[str, _Registered] = {}
_shutdown: dict[str, _Registered] = {}


def on_startup(hook: Hook, *, where: Iterable[str] = (WEB,)) -> Hook:
    """Run ``hook`` when a process of a kind in ``where`` starts (registered once by name)."""
    entry = _Registered(hook, frozenset(where))
    _startup[entry.name] = entry
    return hook


def on_shutdown(hook: Hook, *, where: Iterable[str] = (WEB, WORKER)) -> Hook:
    """Run ``hook`` when a process of a kind in ``where`` stops."""
    entry = _Registered(hook, frozenset(where))
    _shutdown[entry.name] = entry
    return hook


def hooks(kind: str, where: str) -> list[str]:
    """Names of the ``startup`` or ``shutdown`` hooks a ``where`` process runs, in order."""
    registered = _startup if kind == "startup" else _shutdown
    names = [name for name, entry in registered.items() if where in entry.where]
    return names if kind == "startup" else names[::-1]


async def startup(where: str = WEB) -> None:
    for entry in _selected(_startup, where):
        await _call_async(entry)
        logger.debug("start-up hook ran", hook=entry.name)


async def shutdown(where: str = WEB) -> None:
    for entry in reversed(_selected(_shutdown, where)):
        try:
            await _call_async(entry)
        except Exception:
            logger.exception("shutdown hook failed", hook=entry.name)


def startup_sync(where: str = WORKER) -> None:
    for entry in _selected(_startup, where):
        _call_sync(entry)


def shutdown_sync(where: str = WORKER) -> None:
    for entry in reversed(_selected(_shutdown, where)):
        try:
            _call_sync(entry)
        except Exception:
            logger.exception("shutdown hook failed", hook=entry.name)


def _selected(registered: dict[str, _Registered], where: str) -> list[_Registered]:
    return [entry for entry in registered.values() if where in entry.where]


async def _call_async(entry: _Registered) -> None:
    if inspect.iscoroutinefunction(entry.hook):
        await entry.hook()
    else:
        await sync_to_async(entry.hook, thread_sensitive=False)()


def _call_sync(entry: _Registered) -> None:
    if inspect.iscoroutinefunction(entry.hook):
        asyncio.run(entry.hook())
    else:
        entry.hook()
