"""The composition every outbound call uses: circuit → bulkhead slot → call → records.

``Guard.call`` protects one call to one target (a provider's deployment, an MCP server,
an embedding endpoint) with its circuit breaker, its bulkhead, retries and latency
statistics; ``Guard.open_stream`` does the same up to a stream's first item and then
hands back the rest of the stream holding its slot. Refusals (``CircuitOpenError``,
``BulkheadFullError``) are raised so the caller moves to its next target; they are not
retried and count against nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Any, TypeVar

import structlog

from lumina.kernel.resilience.breaker import CircuitBreaker, CircuitOpenError, CircuitState
from lumina.kernel.resilience.bulkhead import Bulkhead, Slot
from lumina.kernel.resilience.latency import LatencyStats
from lumina.kernel.resilience.retry import AttemptHook, RetryPolicy, close_quietly, first_item

logger = structlog.get_logger(__name__)

T = TypeVar("T")


class Guard:
    """Breaker, bulkhead, retries and latency statistics around calls to one kind of target."""

    def __init__(
        self,
        *,
        breaker: CircuitBreaker,
        bulkhead: Bulkhead,
        retry: RetryPolicy,
        stats: LatencyStats,
    ) -> None:
        self.breaker = breaker
        self.bulkhead = bulkhead
        self.retry = retry
        self.stats = stats

    def _may_retry(self, key: Hashable) -> Callable[[BaseException], bool]:
        # A failure that opened the circuit (a failed trial, the N-th failure) ends the
        # retries: the next attempt goes to another target.
        return lambda _error: self.breaker.state(key) != CircuitState.OPEN

    async def _enter(self, key: Hashable, compartment: Hashable, limit: int) -> Slot:
        if not await self.breaker.allow(key):
            raise CircuitOpenError(key)
        try:
            return await self.bulkhead.acquire(compartment, limit)
        except BaseException:
            await self.breaker.release(key)
            raise

    async def _failed(self, key: Hashable, error: BaseException) -> None:
        if self.breaker.counts(error):
            self.stats.record(key, None, ok=False)
        await self.breaker.record_failure(key, error)

    async def call(
        self,
        key: Hashable,
        fn: Callable[[], Awaitable[T]],
        *,
        limit: int,
        compartment: Hashable | None = None,
        on_attempt: AttemptHook | None = None,
    ) -> T:
        """``await fn()`` for ``key`` with every protection; raises the last error,
        refusals included. At most ``limit`` calls are in flight per ``compartment`` (the
        key itself unless given: a provider's deployments share the provider's)."""
        compartment = key if compartment is None else compartment

        async def attempt() -> T:
            slot = await self._enter(key, compartment, limit)
            started = time.perf_counter()
            try:
                result = await fn()
            except BaseException as error:
                slot.release()
                await self._failed(key, error)
                raise
            slot.release()
            self.stats.record(key, (time.perf_counter() - started) * 1000)
            await self.breaker.record_success(key)
            return result

        return await self.retry.call(attempt, on_attempt=on_attempt, may_retry=self._may_retry(key))

    async def open_stream(
        self,
        key: Hashable,
        factory: Callable[[], AsyncIterator[T]],
        *,
        limit: int,
        compartment: Hashable | None = None,
        on_attempt: AttemptHook | None = None,
        on_empty: Callable[[], Exception] | None = None,
    ) -> tuple[AsyncIterator[T], T]:
        """Open a stream with every protection, retrying until its first item arrives.

        Returns ``(rest, first)``. ``rest`` keeps the bulkhead slot until it is exhausted
        or closed (always ``aclose`` it), and records the outcome: a break after the first
        item counts against the key; a consumer that stops early does not.
        """
        compartment = key if compartment is None else compartment

        async def attempt() -> tuple[AsyncIterator[T], T, Slot, float, float]:
            slot = await self._enter(key, compartment, limit)
            started = time.perf_counter()
            try:
                stream = factory()
                first = await first_item(stream, on_empty)
            except BaseException as error:
                slot.release()
                await self._failed(key, error)
                raise
            return stream, first, slot, started, time.perf_counter()

        stream, first, slot, started, first_at = await self.retry.call(
            attempt, on_attempt=on_attempt, may_retry=self._may_retry(key)
        )
        # The first item proves the target is up: that closes a half-open circuit now
        # rather than after a long stream.
        await self.breaker.record_success(key)
        ttft_ms = (first_at - started) * 1000
        return GuardedStream(self, key, stream, slot, started, ttft_ms), first


class GuardedStream:
    """The rest of a stream: holds its bulkhead slot and records how the stream ended.

    A class rather than an async generator so that ``aclose`` releases the slot even
    when iteration never started.
    """

    def __init__(
        self,
        guard: Guard,
        key: Hashable,
        stream: AsyncIterator[Any],
        slot: Slot,
        started: float,
        ttft_ms: float,
    ) -> None:
        self._guard = guard
        self._key = key
        self._stream = stream
        self._slot = slot
        self._started = started
        self._ttft_ms = ttft_ms
        self._done = False

    def __aiter__(self) -> GuardedStream:
        return self

    async def __anext__(self) -> Any:
        if self._done:
            raise StopAsyncIteration
        try:
            return await anext(self._stream)
        except StopAsyncIteration:
            latency_ms = (time.perf_counter() - self._started) * 1000
            self._guard.stats.record(self._key, latency_ms, self._ttft_ms)
            await self.aclose()
            raise
        except asyncio.CancelledError:
            raise  # the consumer went away: nothing to say about the target
        except BaseException as error:
            await self.aclose()
            await self._guard._failed(self._key, error)
            raise

    async def aclose(self) -> None:
        if self._done:
            return
        self._done = True
        self._slot.release()
        await close_quietly(self._stream)

    def __del__(self) -> None:
        # A consumer that forgot ``aclose`` must not keep the target's slot forever.
        try:
            self._slot.release()
        except Exception:  # a finaliser must not raise (e.g. its loop is already closed)
            logger.debug("releasing a forgotten stream's slot failed", exc_info=True)
