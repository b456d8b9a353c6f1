"""Resilience for calls that leave the process: one module per mechanism, keyed by name.

* ``breaker``: circuit breakers (consecutive failures; shared through Redis with Lua
  scripts, a local state machine without it);
* ``bulkhead``: at most N calls in flight per key and event loop, a short wait, then a
  refusal;
* ``retry``: exponential backoff with jitter (tenacity), never sooner than the remote
  side's ``Retry-After``;
* ``latency``: EWMAs of latency, time to first item and error rate per key;
* ``guard``: the composition, ``Guard.call`` and ``Guard.open_stream``.

Keys are any hashable value (a deployment id, an MCP server's id, an endpoint's name).
What counts as a failure, what is worth a retry, and what a transition means (an event,
a metric) is for the owner to say through the constructors' callables, so providers,
tools and memory share the mechanisms and keep their own policies. Providers' glue is
``lumina.providers.resilience``; ADR 0007 explains the choices.
"""

from lumina.kernel.resilience.breaker import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    Transition,
)
from lumina.kernel.resilience.bulkhead import Bulkhead, BulkheadFullError, Slot
from lumina.kernel.resilience.guard import Guard, GuardedStream
from lumina.kernel.resilience.latency import LatencyEntry, LatencyStats
from lumina.kernel.resilience.retry import AttemptHook, RetryPolicy, StreamEmptyError

__all__ = [
    "AttemptHook",
    "Bulkhead",
    "BulkheadFullError",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "Guard",
    "GuardedStream",
    "LatencyEntry",
    "LatencyStats",
    "RetryPolicy",
    "Slot",
    "StreamEmptyError",
    "Transition",
]
