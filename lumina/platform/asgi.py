"""ASGI-level pieces around Django's handler: the body limit, and the threads that run
synchronous middleware and views (ADR 0027, 0039)."""

from __future__ import annotations

import json
import threading
from concurrent.futures import Executor, Future, ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.db import connections

from lumina.kernel.errors import PayloadTooLargeError
from lumina.platform.middleware import ASYNC_PROBES

# Idle request threads kept for reuse, each with its open database connection.
IDLE_THREADS = 16


def _too_large(error: PayloadTooLargeError) -> tuple[dict, dict]:
    body = json.dumps(
        {"error": {"code": error.code, "message": error.message, "fields": {}}}
    ).encode()
    start = {
        "type": "http.response.start",
        "status": error.status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class BodyLimit:
    """Refuses bodies over ``LUMINA_MAX_REQUEST_BYTES`` with 413 before they are buffered.

    Django's ASGI handler reads a whole body (spooling to disk) before any middleware
    runs, so a declared Content-Length is checked up front and a chunked body is
    counted as it arrives: the chunk that crosses the limit raises
    ``PayloadTooLargeError`` out of ``receive``. The ``/v1`` gateway answers that in its
    own error shape; anything else that lets it escape gets the 413 from here.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = settings.LUMINA_MAX_REQUEST_BYTES
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            for message in _too_large(_error(limit)):
                await send(message)
            return

        received = 0
        started = False

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _error(limit)
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except PayloadTooLargeError as error:
            if not started:
                for message in _too_large(error):
                    await send(message)


def _error(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"The request body exceeds {limit} bytes.")


class _Threads:
    """Single-thread executors lent to requests and kept when they finish.

    Django gives every request a new thread for its synchronous code, and Django's
    database connections belong to a thread, so every request would open (and leak until
    garbage collection) a PostgreSQL connection of its own. Lending threads from here,
    most recently used first, lets ``CONN_MAX_AGE`` do its work as under a WSGI server.
    A request that finds no idle thread gets a new one: nothing ever waits for a thread.
    """

    def __init__(self, idle_limit: int) -> None:
        self.idle_limit = idle_limit
        self.idle: list[ThreadPoolExecutor] = []
        self.lock = threading.Lock()

    def take(self) -> ThreadPoolExecutor:
        with self.lock:
            if self.idle:
                return self.idle.pop()
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="lumina-request")

    def give_back(self, executor: ThreadPoolExecutor) -> None:
        with self.lock:
            if len(self.idle) < self.idle_limit:
                self.idle.append(executor)
                return
        executor.submit(connections.close_all)  # the thread's own connections
        executor.shutdown(wait=False)

    def close_idle(self) -> None:
        """Close the idle threads and their database connections (at shutdown)."""
        with self.lock:
            idle, self.idle = self.idle, []
        for executor in idle:
            executor.submit(connections.close_all)
            executor.shutdown(wait=True)


class _Lease(Executor):
    """The executor of one request: takes a thread at the first synchronous call only,
    so a request that never leaves the event loop holds none."""

    def __init__(self, threads: _Threads) -> None:
        self.threads = threads
        self.executor: ThreadPoolExecutor | None = None

    def submit(self, fn, /, *args, **kwargs) -> Future:
        if self.executor is None:
            self.executor = self.threads.take()
        return self.executor.submit(fn, *args, **kwargs)

    def release(self) -> None:
        if self.executor is not None:
            self.threads.give_back(self.executor)
            self.executor = None


class ReusedThreadsASGIHandler(ASGIHandler):
    """Django's ASGI handler, running each request's synchronous code on a reused thread,
    middleware and view in one call.

    Django's own handler makes a thread per request (``ThreadSensitiveContext()``); here
    the context gets a lent executor instead. Requests still run side by side: each has
    a thread of its own while it runs.
    """

    threads = _Threads(IDLE_THREADS)

    def __init__(self) -> None:
        super().__init__()
        # The middleware is synchronous: under the asynchronous chain every hook of it is
        # a switch to the request's thread and back (20 per request). The synchronous
        # chain runs all of it, and the view, in one switch (ADR 0039).
        self._sync = BaseHandler()
        self._sync.load_middleware(is_async=False)

    async def get_response_async(self, request):
        if request.path_info in ASYNC_PROBES:
            # Asynchronous views: the asynchronous chain keeps them on the event loop.
            return await super().get_response_async(request)
        return await sync_to_async(self._sync.get_response, thread_sensitive=True)(request)

    @classmethod
    def close_idle_threads(cls) -> None:
        cls.threads.close_idle()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        lease = _Lease(self.threads)
        try:
            async with ThreadSensitiveContext(executor=lease):
                await self.handle(scope, receive, send)
        finally:
            lease.release()
