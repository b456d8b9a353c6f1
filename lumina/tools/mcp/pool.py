"""Warm sessions with stdio MCP servers, so a call does not start a process each time.

Starting a stdio server costs about a second (an interpreter and the SDK's import); a
session kept open answers a call in milliseconds. One session per registered server and
revision (a changed server gets a new one), shared by concurrent calls (MCP multiplexes
requests on a session). A session is retired, and its process stopped, when a call on
it crashes, times out or fails outside the tool (the next call starts a fresh one: a
server that hangs or dies costs one call), when it has been idle ``IDLE_SECONDS``, when
more than ``MAX_SESSIONS`` are open (the least recently used goes), and at shutdown.

The sessions live on an event loop of their own, in a daemon thread, because the SDK's
sessions are bound to the loop and task that opened them while runners are called from
any thread. ``call`` is the synchronous entry the runner uses. ADR 0019.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

import anyio

from lumina.tools.mcp.client import Connection, classify, outcome_of
from lumina.tools.mcp.types import CallOutcome, McpEndpoint

IDLE_SECONDS = 300.0
MAX_SESSIONS = 32
CLOSE_SECONDS = 10.0  # the SDK's stdio shutdown is bounded well within this
# Outcomes after which the session is not trusted with another call.
RETIRE = frozenset({"crashed", "timeout", "failed", "refused"})


class _Session:
    def __init__(self, server_id: str, revision: str, endpoint: McpEndpoint) -> None:
        self.server_id = server_id
        self.revision = revision
        self.connection = Connection(endpoint, timeout_seconds=None, max_bytes=None)
        self.client: Any = None
        self.closed = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.last_used = time.monotonic()
        self.in_flight = 0

    async def start(self, timeout_seconds: float) -> None:
        ready: asyncio.Future = asyncio.get_running_loop().create_future()

        async def hold() -> None:
            # The SDK's client is entered and left in this one task, as anyio requires.
            try:
                async with AsyncExitStack() as stack:
                    client = await self.connection.open(stack)
                    if not ready.done():
                        ready.set_result(client)
                    await self.closed.wait()
            except BaseException as exc:
                if not ready.done():
                    ready.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            finally:
                if self.connection.stderr_file is not None:
                    self.connection.stderr_file.close()

        self.task = asyncio.create_task(hold(), name=f"mcp-session-{self.server_id}")
        try:
            self.client = await asyncio.wait_for(asyncio.shield(ready), timeout_seconds)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        self.closed.set()
        if self.task is not None:
            done, _ = await asyncio.wait({self.task}, timeout=CLOSE_SECONDS)
            if not done:
                self.task.cancel()

    @property
    def alive(self) -> bool:
        return self.task is not None and not self.task.done() and not self.closed.is_set()


class SessionPool:
    """The sessions of one process, used only from the pool's own event loop."""

    def __init__(self) -> None:
        self.sessions: dict[str, _Session] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def call(
        self,
        *,
        server_id: str,
        revision: str,
        endpoint: McpEndpoint,
        name: str,
        arguments: Mapping[str, Any],
        timeout_seconds: float,
        max_bytes: int,
    ) -> CallOutcome:
        started = time.perf_counter()
        await self._reap()
        session: _Session | None = None
        try:
            session = await self._session(server_id, revision, endpoint, timeout_seconds)
            session.in_flight += 1
            remaining = max(0.01, timeout_seconds - (time.perf_counter() - started))
            try:
                with anyio.fail_after(remaining):
                    answer = await session.client.call_tool(name, dict(arguments))
            finally:
                session.in_flight -= 1
                session.last_used = time.monotonic()
            outcome = outcome_of(answer, max_bytes)
        except BaseException as exc:
            status, message = classify(exc, endpoint, timeout_seconds)
            if status == "cancelled":
                raise
            outcome = CallOutcome(status=status, error=message)  # type: ignore[arg-type]
        stderr = ""
        if session is not None and outcome.status in RETIRE:
            stderr = session.connection.stderr_tail(close=False)
            await self._retire(session)
        return dataclasses.replace(
            outcome, stderr=stderr, duration_ms=(time.perf_counter() - started) * 1000
        )

    async def _session(
        self, server_id: str, revision: str, endpoint: McpEndpoint, timeout_seconds: float
    ) -> _Session:
        lock = self._locks.setdefault(server_id, asyncio.Lock())
        async with lock:
            current = self.sessions.get(server_id)
            if current is not None and current.alive and current.revision == revision:
                return current
            if current is not None:
                await self._retire(current)
            if len(self.sessions) >= MAX_SESSIONS:
                oldest = min(self.sessions.values(), key=lambda s: s.last_used)
                await self._retire(oldest)
            session = _Session(server_id, revision, endpoint)
            await session.start(timeout_seconds)
            self.sessions[server_id] = session
            return session

    async def _retire(self, session: _Session) -> None:
        if self.sessions.get(session.server_id) is session:
            del self.sessions[session.server_id]
        await session.close()

    async def _reap(self) -> None:
        now = time.monotonic()
        for session in list(self.sessions.values()):
            idle = now - session.last_used > IDLE_SECONDS and session.in_flight == 0
            if idle or not session.alive:
                await self._retire(session)

    async def close_all(self) -> None:
        for session in list(self.sessions.values()):
            await self._retire(session)


class _PoolThread:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.pool: SessionPool | None = None

    def running(self) -> tuple[asyncio.AbstractEventLoop, SessionPool]:
        with self._guard:
            if self.loop is None or not self.loop.is_running():
                loop = asyncio.new_event_loop()
                started = threading.Event()
                loop.call_soon(started.set)
                threading.Thread(
                    target=loop.run_forever, name="lumina-mcp-sessions", daemon=True
                ).start()
                started.wait(10)
                self.loop, self.pool = loop, SessionPool()
            assert self.pool is not None  # noqa: S101 (set together with the loop)
            return self.loop, self.pool

    def stop(self) -> None:
        with self._guard:
            loop, pool = self.loop, self.pool
            self.loop = self.pool = None
        if loop is None or pool is None or not loop.is_running():
            return
        asyncio.run_coroutine_threadsafe(pool.close_all(), loop).result(CLOSE_SECONDS * 4)
        loop.call_soon_threadsafe(loop.stop)


_thread = _PoolThread()


def call(
    *,
    server_id: str,
    revision: str,
    endpoint: McpEndpoint,
    name: str,
    arguments: Mapping[str, Any],
    timeout_seconds: float,
    max_bytes: int,
) -> CallOutcome:
    """Call a tool on a warm session of the server (opened if needed), from any thread."""
    loop, pool = _thread.running()
    future = asyncio.run_coroutine_threadsafe(
        pool.call(
            server_id=server_id,
            revision=revision,
            endpoint=endpoint,
            name=name,
            arguments=arguments,
            timeout_seconds=timeout_seconds,
            max_bytes=max_bytes,
        ),
        loop,
    )
    return future.result(timeout_seconds + CLOSE_SECONDS * 2)


def open_sessions() -> int:
    return len(_thread.pool.sessions) if _thread.pool is not None else 0


def stop() -> None:
    """Close every session (their processes stop) and the pool's loop."""
    _thread.stop()
