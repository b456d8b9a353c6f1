"""Providers' use of the kernel's resilience (``lumina.kernel.resilience``, ADR 0007).

The mechanisms are the kernel's; this module says what they mean for providers:

* a circuit per deployment (key: its id) and a bulkhead per provider (at most
  ``ProviderDTO.max_concurrency`` calls in flight per process);
* only failures that speak about the provider count against it: no answer (unreachable,
  timeout, broken stream), 5xx, 408 and 429 (the provider is saturated for our key:
  sending traffic elsewhere is what we want). A 4xx caused by the request (400, 404, 413,
  422 …) and a misconfiguration (401, 403) do not, nor do our own refusals;
* retries follow ``UpstreamError.retryable`` and its ``retry_after``, with the
  ``LUMINA_PROVIDER_RETRY*`` settings;
* a circuit's transitions publish ``CircuitOpened`` / ``CircuitClosed`` and set the
  ``lumina_provider_circuit_state`` gauge;
* the kernel's refusals become ``UpstreamError``s (``circuit_open``, ``provider_busy``),
  so the completion path moves to its next candidate as for any provider failure.
"""

from __future__ import annotations

import concurrent.futures
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable
from typing import Any, TypeVar

import structlog
from django.conf import settings
from prometheus_client import Gauge

from lumina.kernel.events import Event
from lumina.kernel.resilience import (
    Bulkhead,
    BulkheadFullError,
    CircuitBreaker,
    CircuitState,
    Guard,
    LatencyStats,
    RetryPolicy,
    Transition,
)
from lumina.kernel.resilience import CircuitOpenError as CircuitRefusal
from lumina.providers.adapters.base import UpstreamError
from lumina.providers.events.routing import CircuitClosed, CircuitOpened
from lumina.providers.types import DeploymentDTO, ProviderDTO

__all__ = [
    "CircuitOpenError",
    "CircuitState",
    "LatencyStats",
    "ProviderBusyError",
    "attempt_calls",
    "attempt_stream",
    "circuit_breaker",
    "circuit_states",
    "counts_against_provider",
    "latency_stats",
]

logger = structlog.get_logger(__name__)

T = TypeVar("T")

# Redis keys as before the mechanisms moved to the kernel, so running processes agree.
CIRCUIT_PREFIX = "lumina:circuit"

# The hook sees every attempt that reached a provider: deployment, attempt number (from
# 1), the error (None on success) and the attempt's duration in seconds.
AttemptHook = Callable[[DeploymentDTO, int, UpstreamError | None, float], None]


class CircuitOpenError(UpstreamError):
    """The deployment's circuit is open: try the next candidate."""

    def __init__(self, deployment: DeploymentDTO) -> None:
        super().__init__(
            f"the circuit of {deployment.qualified_name} is open",
            code="circuit_open",
            retryable=True,
        )


class ProviderBusyError(UpstreamError):
    """Every slot of the provider's bulkhead stayed taken for the whole wait."""

    def __init__(self, provider: ProviderDTO, wait: float) -> None:
        super().__init__(
            f"provider {provider.name} is busy: {provider.max_concurrency} calls in flight "
            f"and no slot freed within {wait:g}s",
            code="provider_busy",
            retryable=True,
        )


_OUR_CODES = frozenset({"circuit_open", "provider_busy"})


def counts_against_provider(error: BaseException) -> bool:
    """Whether ``error`` says something about the provider's health (see module doc)."""
    if isinstance(error, UpstreamError):
        if error.code in _OUR_CODES:
            return False
        status = error.status
        return status is None or status >= 500 or status in (408, 429)
    # A network error an adapter failed to wrap still means "unreachable".
    return isinstance(error, TimeoutError | ConnectionError)


def _describe(error: BaseException) -> str:
    if isinstance(error, UpstreamError):
        return f"{error.code} (HTTP {error.status})" if error.status else error.code
    return type(error).__name__


def _retryable(error: BaseException) -> bool:
    return isinstance(error, UpstreamError) and error.retryable and error.code not in _OUR_CODES


# -- what a circuit's transitions mean here -----------------------------------------------

CIRCUIT_STATE = Gauge(
    "lumina_provider_circuit_state",
    "Circuit breaker state per deployment: 0 closed, 1 half-open, 2 open.",
    ["deployment", "provider", "model"],
)
_GAUGE_VALUE = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}
# Deployments seen by the breaker, for the gauge's labels and the events' names.
_deployments: dict[uuid.UUID, DeploymentDTO] = {}


def remember(deployment: DeploymentDTO) -> None:
    """Name ``deployment`` for the breaker's gauge and events (before a call reports)."""
    if deployment.id not in _deployments:
        _deployments[deployment.id] = deployment


def _gauge(key: Hashable, state: CircuitState) -> None:
    deployment = _deployments.get(key)  # type: ignore[call-overload]
    if deployment is not None:
        CIRCUIT_STATE.labels(str(deployment.id), deployment.provider.name, deployment.name).set(
            _GAUGE_VALUE[state]
        )


def _event(transition: Transition) -> Event | None:
    deployment = _deployments.get(transition.key)  # type: ignore[call-overload]
    if deployment is None:
        return None
    kind = CircuitOpened if transition.opened else CircuitClosed
    return kind(
        deployment_id=deployment.id,
        provider_name=deployment.provider.name,
        model=deployment.name,
        reason=transition.reason,
    )


# Publishing writes the outbox (a database transaction): never on the event loop, and
# never inside the caller's transaction, whose rollback must not take the event along.
_publisher = concurrent.futures.ThreadPoolExecutor(
    max_workers=1, thread_name_prefix="lumina-circuit-events"
)
_pending: set[concurrent.futures.Future] = set()


def _publish_now(event: Event) -> None:
    from django.db import close_old_connections, transaction

    from lumina.kernel.bus import publish

    close_old_connections()
    try:
        with transaction.atomic():
            publish(event)
    except Exception:
        logger.exception("circuit event not published", event=event.key)
    finally:
        close_old_connections()


def publish_in_background(event: Event) -> None:
    """Publish ``event`` from a worker thread; returns at once."""
    future = _publisher.submit(_publish_now, event)
    _pending.add(future)
    future.add_done_callback(_pending.discard)


def wait_for_published_events(timeout: float = 5.0) -> None:
    """Block until circuit events handed to the publisher so far are written (tests,
    shutdown)."""
    concurrent.futures.wait(list(_pending), timeout=timeout)


def transitions_published(publish: Callable[[Event], None] = publish_in_background):
    """The breaker's ``on_transition``: the transition as a providers event, published."""

    def on_transition(transition: Transition) -> None:
        event = _event(transition)
        if event is not None:
            publish(event)

    return on_transition


def provider_breaker(
    *, notify: Callable[[Event], None] | None = publish_in_background, **options: Any
) -> CircuitBreaker:
    """A circuit breaker with the providers' policy (tests pass ``redis_url`` etc.)."""
    options.setdefault("prefix", CIRCUIT_PREFIX)
    return CircuitBreaker(
        name="providers",
        counts=counts_against_provider,
        describe=_describe,
        on_transition=transitions_published(notify) if notify is not None else None,
        on_state=_gauge,
        **options,
    )


def provider_retry_policy(**options: Any) -> RetryPolicy:
    values = {
        "retries": settings.LUMINA_PROVIDER_RETRIES,
        "backoff": settings.LUMINA_PROVIDER_RETRY_BACKOFF,
        "max_wait": settings.LUMINA_PROVIDER_RETRY_MAX_WAIT,
        **options,
    }
    return RetryPolicy(retryable=_retryable, **values)


@functools.cache
def circuit_breaker() -> CircuitBreaker:
    """This process's circuit breaker for deployments, configured from settings."""
    return provider_breaker()


@functools.cache
def latency_stats() -> LatencyStats:
    return LatencyStats()


@functools.cache
def guard() -> Guard:
    return Guard(
        breaker=circuit_breaker(),
        bulkhead=Bulkhead(),
        retry=provider_retry_policy(),
        stats=latency_stats(),
    )


# -- the calls the completion path makes -------------------------------------------------


async def circuit_states(deployments: Iterable[DeploymentDTO]) -> dict[uuid.UUID, str]:
    """The circuits of ``deployments`` that are not closed, for ``select`` (stale views
    are refreshed from Redis first, in one round trip)."""
    keys = []
    for deployment in deployments:
        remember(deployment)
        keys.append(deployment.id)
    return await circuit_breaker().states(keys)  # type: ignore[return-value]


def _hook(deployment: DeploymentDTO, on_attempt: AttemptHook | None):
    if on_attempt is None:
        return None

    def hook(number: int, error: Exception | None, seconds: float) -> None:
        if error is None or isinstance(error, UpstreamError):
            on_attempt(deployment, number, error, seconds)

    return hook


def _stream_cut() -> UpstreamError:
    return UpstreamError(
        "the provider ended the stream before sending anything",
        code="upstream_stream_cut",
        retryable=True,
    )


async def attempt_calls(
    deployment: DeploymentDTO,
    fn: Callable[[], Awaitable[T]],
    *,
    on_attempt: AttemptHook | None = None,
    with_guard: Guard | None = None,
) -> T:
    """One candidate, with breaker, bulkhead, retries and stats; raises ``UpstreamError``."""
    remember(deployment)
    provider = deployment.provider
    current = with_guard or guard()
    try:
        return await current.call(
            deployment.id,
            fn,
            limit=provider.max_concurrency,
            compartment=provider.id,
            on_attempt=_hook(deployment, on_attempt),
        )
    except CircuitRefusal:
        raise CircuitOpenError(deployment) from None
    except BulkheadFullError as full:
        raise ProviderBusyError(provider, full.wait) from None


async def attempt_stream(
    deployment: DeploymentDTO,
    factory: Callable[[], AsyncIterator[T]],
    *,
    on_attempt: AttemptHook | None = None,
    with_guard: Guard | None = None,
) -> tuple[AsyncIterator[T], T]:
    """``(rest, first)`` of one candidate's stream; ``rest`` holds the provider's slot."""
    remember(deployment)
    provider = deployment.provider
    current = with_guard or guard()
    try:
        return await current.open_stream(
            deployment.id,
            factory,
            limit=provider.max_concurrency,
            compartment=provider.id,
            on_attempt=_hook(deployment, on_attempt),
            on_empty=_stream_cut,
        )
    except CircuitRefusal:
        raise CircuitOpenError(deployment) from None
    except BulkheadFullError as full:
        raise ProviderBusyError(provider, full.wait) from None
