"""Calling synchronous, usually-cached code from the event loop without a thread per call.

Most hot-path look-ups (token, permission and registry caches) answer from memory; only a
cold cache touches the database, which Django forbids on the event loop. ``run_sync``
tries the call inline and moves it to a worker thread only when Django refuses it.
"""

from __future__ import annotations

import asyncio
import os
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
