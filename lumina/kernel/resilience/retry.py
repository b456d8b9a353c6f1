"""Retries with exponential backoff and jitter (tenacity), honouring ``Retry-After``.

Which errors are worth another attempt is the owner's call (``retryable``); by default
an error says so itself with a true ``retryable`` attribute, and may carry the remote
side's ``retry_after`` in seconds. The wait before a retry is the backoff, but never
less than ``retry_after``; a ``retry_after`` longer than ``max_wait`` means "go
elsewhere" rather than wait, so the error is raised at once.

The first attempt runs without tenacity: almost every call succeeds at once, and
tenacity's per-call machinery is only worth its cost once a retry is due. Attempts 2…N
run under ``AsyncRetrying``; tenacity itself is imported with the first retry, so a
process that never retries does not hold it (about 1 MiB).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import structlog

from lumina.kernel.lazy import LazyImport
from lumina.kernel.resilience.breaker import CircuitOpenError
from lumina.kernel.resilience.bulkhead import BulkheadFullError

logger = structlog.get_logger(__name__)

tenacity = LazyImport("tenacity")  # loaded with the first retry, not with the server

T = TypeVar("T")

DEFAULT_RETRIES = 2
DEFAULT_BACKOFF = 0.25
DEFAULT_MAX_WAIT = 5.0

# Each attempt: its number (from 1), the error (None on success), its duration in seconds.
AttemptHook = Callable[[int, Exception | None, float], None]
# Refusals by the guard itself: no call was made, so they are no attempt.
REFUSALS = (CircuitOpenError, BulkheadFullError)


def says_retryable(error: BaseException) -> bool:
    return bool(getattr(error, "retryable", False))


def says_retry_after(error: BaseException) -> float | None:
    value = getattr(error, "retry_after", None)
    return float(value) if value else None


class _Attempt:
    """What tenacity's wait strategies read of a retry state."""

    __slots__ = ("attempt_number",)

    def __init__(self, attempt_number: int) -> None:
        self.attempt_number = attempt_number


class RetryPolicy:
    def __init__(
        self,
        *,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        max_wait: float = DEFAULT_MAX_WAIT,
        retryable: Callable[[BaseException], bool] = says_retryable,
        retry_after: Callable[[BaseException], float | None] = says_retry_after,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_wait = float(max_wait)
        self.retryable = retryable
        self.retry_after = retry_after
        self.sleep = sleep
        self._backoff: Callable[[Any], float] | None = None  # built with the first wait

    @property
    def attempts(self) -> int:
        return self.retries + 1

    def worth_retrying(self, error: BaseException) -> bool:
        """Whether another attempt at the same target may succeed and is worth the wait."""
        if isinstance(error, REFUSALS) or not self.retryable(error):
            return False
        retry_after = self.retry_after(error)
        return retry_after is None or retry_after <= self.max_wait

    def wait_for(self, attempt_number: int, error: BaseException | None) -> float:
        """Seconds to wait after failed attempt ``attempt_number``: the backoff, but never
        sooner than the error's ``retry_after``."""
        if self._backoff is None:
            self._backoff = tenacity.wait_exponential_jitter(
                multiplier=self.backoff, max=self.max_wait, jitter=self.backoff
            )
        wait = self._backoff(_Attempt(attempt_number))
        retry_after = self.retry_after(error) if error is not None else None
        if retry_after:
            wait = max(wait, retry_after)
        return min(wait, self.max_wait)

    async def call(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        on_attempt: AttemptHook | None = None,
        may_retry: Callable[[BaseException], bool] | None = None,
    ) -> T:
        """``await fn()``, retried while the error allows; the last error is raised.

        ``may_retry`` can veto a retry (e.g. the circuit opened meanwhile).
        """

        def again(error: BaseException) -> bool:
            return self.worth_retrying(error) and (may_retry is None or may_retry(error))

        started = time.perf_counter()
        try:
            result = await fn()
        except Exception as error:
            _call_hook(on_attempt, 1, error, started)
            if self.retries < 1 or not again(error):
                raise
            first = error
        else:
            _call_hook(on_attempt, 1, None, started)
            return result
        return await self._retry(fn, first, again, on_attempt)

    async def _retry(
        self,
        fn: Callable[[], Awaitable[T]],
        first: Exception,
        again: Callable[[BaseException], bool],
        on_attempt: AttemptHook | None,
    ) -> T:
        await self.sleep(self.wait_for(1, first))
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.retries),
            # tenacity numbers these attempts from 1; they are the calls' 2nd, 3rd …
            wait=lambda state: self.wait_for(
                state.attempt_number + 1, state.outcome.exception() if state.outcome else None
            ),
            retry=tenacity.retry_if_exception(again),
            sleep=self.sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number + 1
                started = time.perf_counter()
                try:
                    result = await fn()
                except Exception as error:
                    _call_hook(on_attempt, number, error, started)
                    raise
                _call_hook(on_attempt, number, None, started)
                return result
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    async def open_stream(
        self,
        factory: Callable[[], AsyncIterator[T]],
        *,
        on_attempt: AttemptHook | None = None,
        may_retry: Callable[[BaseException], bool] | None = None,
        on_empty: Callable[[], Exception] | None = None,
    ) -> tuple[AsyncIterator[T], T]:
        """Open a stream and wait for its first item, retrying only up to that point.

        Returns ``(rest, first)``: ``rest`` yields the items after ``first``. An empty
        stream raises ``on_empty()`` (default: ``StreamEmptyError``, retryable).
        """

        async def opening() -> tuple[AsyncIterator[T], T]:
            stream = factory()
            return stream, await first_item(stream, on_empty)

        return await self.call(opening, on_attempt=on_attempt, may_retry=may_retry)


class StreamEmptyError(Exception):
    """A stream ended before its first item."""

    retryable = True
    code = "stream_empty"


async def first_item(
    stream: AsyncIterator[T], on_empty: Callable[[], Exception] | None = None
) -> T:
    try:
        return await anext(stream)
    except StopAsyncIteration:
        if on_empty is not None:
            raise on_empty() from None
        raise StreamEmptyError("the stream ended before sending anything") from None
    except BaseException:
        await close_quietly(stream)
        raise


async def close_quietly(stream: Any) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:
            logger.debug("closing a failed stream raised", exc_info=True)


def _call_hook(
    hook: AttemptHook | None, number: int, error: Exception | None, started: float
) -> None:
    if hook is None or isinstance(error, REFUSALS):
        return  # nothing was called: the refusal itself is the caller's to record
    try:
        hook(number, error, time.perf_counter() - started)
    except Exception:  # recording an attempt must never break the call
        logger.exception("attempt hook failed")
