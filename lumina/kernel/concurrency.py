"""Keeping the event loop free: synchronous, usually-cached code, and CPU-heavy work.

Most hot-path look-ups (token, permission and registry caches) answer from memory; only a
cold cache touches the database, which Django forbids on the event loop. ``run_sync``
tries the call inline and moves it to a worker thread only when Django refuses it.

``run_cpu`` is for work whose cost grows with the input (counting the tokens of a large
prompt, encoding a large document): it runs in a small pool of its own, so one large
request never stops the loop from serving the others (and the health probes), and a
burst of them queues there instead of taking every thread the process has.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.core.exceptions import SynchronousOnlyOperation

T = TypeVar("T")


async def run_sync(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, inline when it needs no database, else in a thread.

    Only for functions that may safely run twice up to their first database access:
    read paths and caches, not writes with side effects before the query.
    """
    try:
        return fn(*args, **kwargs)
    except SynchronousOnlyOperation:
        return await sync_to_async(fn, thread_sensitive=False)(*args, **kwargs)


def refuse_on_event_loop(what: str) -> None:
    """Raise ``SynchronousOnlyOperation`` on an event loop, as Django does before a query.

    For code that would block (wait on a lock, then query) before Django gets to check:
    ``run_sync`` then repeats the call in a thread. ``DJANGO_ALLOW_ASYNC_UNSAFE`` allows
    it, as it does for Django.
    """
    if os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE"):
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise SynchronousOnlyOperation(f"{what} from an event loop: call through run_sync.")


CPU_WORKERS = 2
_cpu_pool: concurrent.futures.ThreadPoolExecutor | None = None
_cpu_pool_lock = threading.Lock()


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    global _cpu_pool
    if _cpu_pool is None:
        with _cpu_pool_lock:
            if _cpu_pool is None:
                _cpu_pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=CPU_WORKERS, thread_name_prefix="lumina-cpu"
                )
    return _cpu_pool


async def run_cpu(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in the CPU pool, with the caller's context (its log ids).

    For pure computation only (no database: Django's connections are per thread).
    """
    context = contextvars.copy_context()
    call = functools.partial(context.run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_pool(), call)


def _forget_pool_in_child() -> None:
    global _cpu_pool, _cpu_pool_lock
    _cpu_pool, _cpu_pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_in_child)
