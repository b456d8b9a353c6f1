"""Resilience on the path to providers: circuit breakers, bulkheads, retries, latency.

The pieces compose in ``attempt_calls`` (a whole call) and ``attempt_stream`` (the
opening of a stream): circuit check → bulkhead slot → call → breaker and latency
records, retried with backoff while the error allows it.

Circuit breaker, per deployment. It opens after ``LUMINA_BREAKER_FAILURES`` consecutive
provider failures (consecutive, not a rate over a window: cheap to keep in Redis with one
counter, and it reacts to an outage within N requests whatever the traffic). Only
failures that speak about the provider count: no answer (unreachable, timeout, broken
stream), 5xx, 408 and 429 (the provider is saturated for our key: sending traffic
elsewhere is what we want). A 4xx caused by the request (400, 404, 413, 422 …) and a
misconfiguration (401, 403) do not count, nor do our own refusals (``provider_busy``,
``circuit_open``). After ``LUMINA_BREAKER_COOLDOWN`` seconds one trial request goes
through (half-open); its success closes the circuit, its failure opens it again. A trial
whose outcome never comes back stops blocking others after ``trial_timeout`` (the
cooldown by default).

With ``REDIS_URL`` the state lives in one Redis hash per deployment, changed by atomic
Lua scripts, so every process sees an open circuit and exactly one process wins each
transition (and publishes its event). Each process keeps a local view of each state,
refreshed from Redis at most once a second: a warm ``allow`` on a closed circuit is a
dictionary look-up, with no round trip. Without Redis the same state machine runs in
process. Clocks of processes sharing a Redis are assumed in sync (NTP).

Bulkhead, per provider: at most ``ProviderDTO.max_concurrency`` calls in flight per event
loop (so per process under one ASGI worker), waiting up to ``LUMINA_BULKHEAD_WAIT``
seconds for a slot before refusing with ``ProviderBusyError``, which moves the caller to
the next candidate.

Retries (tenacity): exponential backoff with jitter on retryable upstream errors, waiting
at least the provider's ``Retry-After``; a ``Retry-After`` longer than
``LUMINA_PROVIDER_RETRY_MAX_WAIT`` means "try another candidate" rather than waiting.

Latency statistics: per-deployment EWMAs of latency, time to first token and error rate,
in process, read by the ``fastest`` and ``balanced`` strategies.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import enum
import functools
import math
import threading
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import structlog
from django.conf import settings
from prometheus_client import Gauge
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from lumina.kernel.events import Event
from lumina.providers.adapters.base import UpstreamError
from lumina.providers.events.routing import CircuitClosed, CircuitOpened
from lumina.providers.types import DeploymentDTO, ProviderDTO

logger = structlog.get_logger(__name__)

T = TypeVar("T")

DEFAULT_BREAKER_FAILURES = 5
DEFAULT_BREAKER_COOLDOWN = 30.0
DEFAULT_BULKHEAD_WAIT = 0.5
DEFAULT_RETRIES = 2
DEFAULT_RETRY_BACKOFF = 0.25
DEFAULT_RETRY_MAX_WAIT = 5.0
DEFAULT_LATENCY_ALPHA = 0.2


def _setting(name: str, default: Any) -> Any:
    value = getattr(settings, name, None)
    return default if value is None else value


# -- errors the resilience layer itself raises -----------------------------------------


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


# -- circuit breaker --------------------------------------------------------------------


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


_GAUGE_VALUE = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}

CIRCUIT_STATE = Gauge(
    "lumina_provider_circuit_state",
    "Circuit breaker state per deployment: 0 closed, 1 half-open, 2 open.",
    ["deployment", "provider", "model"],
)

# Transitions a store reports back; only the process that made one publishes it.
_NONE, _OPENED, _REOPENED, _CLOSED = 0, 1, 2, 3


@dataclasses.dataclass(slots=True)
class _View:
    """One deployment's circuit as this process last saw it."""

    state: str = CircuitState.CLOSED
    failures: int = 0
    opened_until: float = 0.0  # wall clock (time.time), shared between processes
    trial_until: float = 0.0
    reason: str = ""
    fetched_at: float = -math.inf  # time.monotonic of the last read from the store

    def effective(self, now: float) -> CircuitState:
        """The state selection should act on: an open circuit past its cooldown is
        ready for a trial, so it ranks as half-open."""
        if self.state == CircuitState.OPEN and now < self.opened_until:
            return CircuitState.OPEN
        if self.state == CircuitState.CLOSED:
            return CircuitState.CLOSED
        return CircuitState.HALF_OPEN


# The state machine, once in Python (the local store, and the fallback when Redis is
# unreachable) and once in Lua (the shared store); the tests run both.


def _local_failure(view: _View, threshold: int, until: float, reason: str) -> int:
    if view.state == CircuitState.OPEN:
        return _NONE  # a late failure of a call let through before the circuit opened
    if view.state == CircuitState.HALF_OPEN:
        transition = _REOPENED
    else:
        view.failures += 1
        if view.failures < threshold:
            return _NONE
        transition = _OPENED
    view.state, view.opened_until, view.trial_until = CircuitState.OPEN, until, 0.0
    view.reason = reason
    return transition


def _local_success(view: _View) -> int:
    if view.state == CircuitState.HALF_OPEN:
        view.state, view.failures, view.opened_until, view.trial_until = (
            CircuitState.CLOSED,
            0,
            0.0,
            0.0,
        )
        view.reason = ""
        return _CLOSED
    if view.state == CircuitState.CLOSED:
        view.failures = 0
    return _NONE  # a late success while open says nothing about the trial to come


def _local_claim(view: _View, now: float, trial_until: float) -> bool:
    if (view.state == CircuitState.OPEN and now >= view.opened_until) or (
        view.state == CircuitState.HALF_OPEN and now >= view.trial_until
    ):
        view.state, view.trial_until = CircuitState.HALF_OPEN, trial_until
        return True
    return False


def _local_release(view: _View) -> None:
    if view.state == CircuitState.HALF_OPEN:
        view.trial_until = 0.0


# Every script answers {transition, state, failures, opened_until, trial_until, reason}.
_LUA_READ = """
local v = redis.call('HMGET', KEYS[1], 's', 'f', 'u', 't', 'r')
"""
_LUA_ANSWER = """
v = redis.call('HMGET', KEYS[1], 's', 'f', 'u', 't', 'r')
return {transition, v[1], v[2], v[3], v[4], v[5]}
"""
# ARGV: threshold, opened_until, reason, ttl
_LUA_FAILURE = (
    _LUA_READ
    + """
local s = v[1] or 'closed'
local transition = 0
if s == 'half_open' then
  transition = 2
elseif s == 'closed' then
  if redis.call('HINCRBY', KEYS[1], 'f', 1) >= tonumber(ARGV[1]) then transition = 1 end
end
if transition > 0 then
  redis.call('HSET', KEYS[1], 's', 'open', 'u', ARGV[2], 't', '0', 'r', ARGV[3])
end
if s ~= 'open' then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
"""
    + _LUA_ANSWER
)
_LUA_SUCCESS = (
    _LUA_READ
    + """
local transition = 0
if v[1] == 'half_open' then
  transition = 3
  redis.call('DEL', KEYS[1])
elseif v[1] == false or v[1] == 'closed' then
  redis.call('DEL', KEYS[1])
end
"""
    + _LUA_ANSWER
)
# ARGV: now, trial_until, ttl
_LUA_CLAIM = (
    _LUA_READ
    + """
local now = tonumber(ARGV[1])
local transition = 0
if (v[1] == 'open' and now >= tonumber(v[3] or 0)) or
   (v[1] == 'half_open' and now >= tonumber(v[4] or 0)) then
  redis.call('HSET', KEYS[1], 's', 'half_open', 't', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  transition = 4
end
"""
    + _LUA_ANSWER
)
_LUA_RELEASE = (
    _LUA_READ
    + """
local transition = 0
if v[1] == 'half_open' then redis.call('HSET', KEYS[1], 't', '0') end
"""
    + _LUA_ANSWER
)
_CLAIMED = 4
# Redis forgets a circuit nobody touched for a day (a closed one is simply absent).
_KEY_TTL = 86_400


def _view_from_fields(fields: Sequence[Any], fetched_at: float) -> _View:
    state, failures, opened_until, trial_until, reason = (
        f.decode() if isinstance(f, bytes) else f for f in fields
    )
    return _View(
        state=state or CircuitState.CLOSED,
        failures=int(failures or 0),
        opened_until=float(opened_until or 0),
        trial_until=float(trial_until or 0),
        reason=reason or "",
        fetched_at=fetched_at,
    )


# Publishing writes the outbox (a database transaction): never on the event loop, and
# never inside the caller's transaction, whose rollback must not take the event along.
_publisher = concurrent.futures.ThreadPoolExecutor(
    max_workers=1, thread_name_prefix="lumina-circuit-events"
)
_pending: set[concurrent.futures.Future] = set()


def _publish_now(event: Event) -> None:
    # Imported here so that importing this module never loads Django models.
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


_FROM_SETTINGS: Any = object()


class CircuitBreaker:
    """Circuit breakers for every deployment, shared through Redis when configured."""

    def __init__(
        self,
        *,
        failures: int | None = None,
        cooldown: float | None = None,
        redis_url: str | None = _FROM_SETTINGS,
        prefix: str = "lumina:circuit",
        refresh_interval: float = 1.0,
        trial_timeout: float | None = None,
        notify: Callable[[Event], None] | None = publish_in_background,
    ) -> None:
        self.threshold = int(
            failures or _setting("LUMINA_BREAKER_FAILURES", DEFAULT_BREAKER_FAILURES)
        )
        self.cooldown = float(
            cooldown
            if cooldown is not None
            else _setting("LUMINA_BREAKER_COOLDOWN", DEFAULT_BREAKER_COOLDOWN)
        )
        self.trial_timeout = float(trial_timeout if trial_timeout is not None else self.cooldown)
        self.refresh_interval = refresh_interval
        self.prefix = prefix
        self.notify = notify
        self.redis_url = (
            getattr(settings, "REDIS_URL", None) if redis_url is _FROM_SETTINGS else redis_url
        )
        self._views: dict[uuid.UUID, _View] = {}
        self._labels: dict[uuid.UUID, tuple[str, str, str]] = {}
        self._gauge_state: dict[uuid.UUID, str] = {}
        self._trials: set[uuid.UUID] = set()  # trials this process holds
        self._refreshing: set[uuid.UUID] = set()
        self._lock = threading.Lock()
        self._sync: Any = None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._redis_down_logged = 0.0

    @property
    def shared(self) -> bool:
        return bool(self.redis_url)

    def _key(self, deployment_id: uuid.UUID) -> str:
        return f"{self.prefix}:{deployment_id}"

    # -- the hot path ----------------------------------------------------------------

    def allow(self, deployment: DeploymentDTO) -> bool:
        """Whether a call to ``deployment`` may go ahead now (claims the trial when due)."""
        view = self._views.get(deployment.id)
        if self.redis_url:
            if view is None or time.monotonic() - view.fetched_at >= self.refresh_interval:
                view = self._refresh(deployment)
        elif view is None:
            return True
        if view.state == CircuitState.CLOSED:
            return True
        return self._due_for_trial(view) and self._claim(deployment)

    async def allow_async(self, deployment: DeploymentDTO) -> bool:
        view = self._views.get(deployment.id)
        if self.redis_url:
            if view is None or (
                time.monotonic() - view.fetched_at >= self.refresh_interval
                and deployment.id not in self._refreshing  # else act on the view we have
            ):
                view = await self._refresh_async(deployment)
        elif view is None:
            return True
        if view.state == CircuitState.CLOSED:
            return True
        return self._due_for_trial(view) and await self._claim_async(deployment)

    def _stale(self, view: _View) -> bool:
        return time.monotonic() - view.fetched_at >= self.refresh_interval

    def _due_for_trial(self, view: _View) -> bool:
        now = time.time()
        if view.state == CircuitState.OPEN:
            return now >= view.opened_until
        return now >= view.trial_until  # half-open: the last trial ended or timed out

    # -- outcomes --------------------------------------------------------------------

    def record_success(self, deployment: DeploymentDTO) -> None:
        """The deployment answered: resets the failure count, closes a half-open circuit."""
        view = self._views.get(deployment.id)
        if view is None or (view.state == CircuitState.CLOSED and view.failures == 0):
            return  # nothing to reset: no write, no round trip
        self._trials.discard(deployment.id)
        self._apply(deployment, self._run(deployment, "success", ()), "trial call succeeded")

    async def record_success_async(self, deployment: DeploymentDTO) -> None:
        view = self._views.get(deployment.id)
        if view is None or (view.state == CircuitState.CLOSED and view.failures == 0):
            return
        self._trials.discard(deployment.id)
        result = await self._run_async(deployment, "success", ())
        self._apply(deployment, result, "trial call succeeded")

    def record_failure(self, deployment: DeploymentDTO, error: BaseException) -> None:
        """Count ``error`` against the deployment if it is a provider failure; anything
        else only gives back a trial slot this process held."""
        if not counts_against_provider(error):
            self.release(deployment)
            return
        self._trials.discard(deployment.id)
        reason = _describe(error)
        result = self._run(deployment, "failure", self._failure_args(reason))
        self._apply(deployment, result, reason)

    async def record_failure_async(self, deployment: DeploymentDTO, error: BaseException) -> None:
        if not counts_against_provider(error):
            await self.release_async(deployment)
            return
        self._trials.discard(deployment.id)
        reason = _describe(error)
        result = await self._run_async(deployment, "failure", self._failure_args(reason))
        self._apply(deployment, result, reason)

    def release(self, deployment: DeploymentDTO) -> None:
        """Give back a trial slot without a verdict (the call ended for another reason)."""
        if deployment.id in self._trials:
            self._trials.discard(deployment.id)
            self._apply(deployment, self._run(deployment, "release", ()), "")

    async def release_async(self, deployment: DeploymentDTO) -> None:
        if deployment.id in self._trials:
            self._trials.discard(deployment.id)
            self._apply(deployment, await self._run_async(deployment, "release", ()), "")

    def _failure_args(self, reason: str) -> tuple[Any, ...]:
        return (self.threshold, repr(time.time() + self.cooldown), reason[:200], _KEY_TTL)

    def _claim(self, deployment: DeploymentDTO) -> bool:
        args = (repr(time.time()), repr(time.time() + self.trial_timeout), _KEY_TTL)
        claimed = self._apply(deployment, self._run(deployment, "claim", args), "")
        if claimed:
            self._trials.add(deployment.id)
        return claimed

    async def _claim_async(self, deployment: DeploymentDTO) -> bool:
        args = (repr(time.time()), repr(time.time() + self.trial_timeout), _KEY_TTL)
        claimed = self._apply(deployment, await self._run_async(deployment, "claim", args), "")
        if claimed:
            self._trials.add(deployment.id)
        return claimed

    # -- reading states, for selection -----------------------------------------------

    def state(self, deployment_id: uuid.UUID) -> CircuitState:
        """The state as this process sees it now (no I/O)."""
        view = self._views.get(deployment_id)
        return CircuitState.CLOSED if view is None else view.effective(time.time())

    def states(self, deployments: Iterable[DeploymentDTO] = ()) -> dict[uuid.UUID, str]:
        """States to hand to ``rank``: stale views of ``deployments`` are refreshed first
        (one Redis pipeline); only circuits that are not closed are listed."""
        stale = [d for d in deployments if self._needs_refresh(d.id)]
        if stale:
            self._refresh_many(stale)
        return self._snapshot()

    async def states_async(self, deployments: Iterable[DeploymentDTO] = ()) -> dict[uuid.UUID, str]:
        stale = [d for d in deployments if self._needs_refresh(d.id)]
        if stale:
            await self._refresh_many_async(stale)
        return self._snapshot()

    def _needs_refresh(self, deployment_id: uuid.UUID) -> bool:
        if not self.redis_url:
            return False
        view = self._views.get(deployment_id)
        return view is None or self._stale(view)

    def _snapshot(self) -> dict[uuid.UUID, str]:
        now = time.time()
        states = {}
        for deployment_id, view in list(self._views.items()):
            if view.state != CircuitState.CLOSED:
                states[deployment_id] = view.effective(now)
        return states

    # -- the stores --------------------------------------------------------------------

    def _run(self, deployment: DeploymentDTO, op: str, args: tuple[Any, ...]) -> tuple[int, _View]:
        self._remember(deployment)
        if self.redis_url:
            try:
                scripts = self._sync_scripts()
                reply = scripts[op](keys=[self._key(deployment.id)], args=list(args))
                return self._from_reply(deployment, reply)
            except Exception as error:  # Redis down: protect this process on its own
                self._redis_trouble(error)
        return self._run_locally(deployment, op, args)

    async def _run_async(
        self, deployment: DeploymentDTO, op: str, args: tuple[Any, ...]
    ) -> tuple[int, _View]:
        self._remember(deployment)
        if self.redis_url:
            try:
                scripts = self._async_scripts()
                reply = await scripts[op](keys=[self._key(deployment.id)], args=list(args))
                return self._from_reply(deployment, reply)
            except Exception as error:
                self._redis_trouble(error)
        return self._run_locally(deployment, op, args)

    def _run_locally(
        self, deployment: DeploymentDTO, op: str, args: tuple[Any, ...]
    ) -> tuple[int, _View]:
        with self._lock:
            view = self._views.get(deployment.id)
            if view is None:
                view = self._views[deployment.id] = _View(fetched_at=time.monotonic())
            if op == "failure":
                transition = _local_failure(view, args[0], float(args[1]), args[2])
            elif op == "success":
                transition = _local_success(view)
            elif op == "claim":
                transition = _CLAIMED if _local_claim(view, float(args[0]), float(args[1])) else 0
            else:
                _local_release(view)
                transition = _NONE
            return transition, view

    def _from_reply(self, deployment: DeploymentDTO, reply: Sequence[Any]) -> tuple[int, _View]:
        view = _view_from_fields(reply[1:6], time.monotonic())
        self._views[deployment.id] = view
        return int(reply[0]), view

    def _refresh(self, deployment: DeploymentDTO) -> _View:
        self._remember(deployment)
        try:
            fields = self._sync_client().hmget(self._key(deployment.id), "s", "f", "u", "t", "r")
        except Exception as error:
            self._redis_trouble(error)
            return self._keep_local(deployment.id)
        return self._store_view(deployment.id, fields)

    async def _refresh_async(self, deployment: DeploymentDTO) -> _View:
        self._remember(deployment)
        self._refreshing.add(deployment.id)
        try:
            fields = await self._async_client().hmget(
                self._key(deployment.id), "s", "f", "u", "t", "r"
            )
        except Exception as error:
            self._redis_trouble(error)
            return self._keep_local(deployment.id)
        finally:
            self._refreshing.discard(deployment.id)
        return self._store_view(deployment.id, fields)

    def _refresh_many(self, deployments: Sequence[DeploymentDTO]) -> None:
        try:
            pipe = self._sync_client().pipeline(transaction=False)
            for d in deployments:
                pipe.hmget(self._key(d.id), "s", "f", "u", "t", "r")
            replies = pipe.execute()
        except Exception as error:
            self._redis_trouble(error)
            for d in deployments:
                self._keep_local(d.id)
            return
        for d, fields in zip(deployments, replies, strict=True):
            self._remember(d)
            self._store_view(d.id, fields)

    async def _refresh_many_async(self, deployments: Sequence[DeploymentDTO]) -> None:
        try:
            pipe = self._async_client().pipeline(transaction=False)
            for d in deployments:
                pipe.hmget(self._key(d.id), "s", "f", "u", "t", "r")
            replies = await pipe.execute()
        except Exception as error:
            self._redis_trouble(error)
            for d in deployments:
                self._keep_local(d.id)
            return
        for d, fields in zip(deployments, replies, strict=True):
            self._remember(d)
            self._store_view(d.id, fields)

    def _store_view(self, deployment_id: uuid.UUID, fields: Sequence[Any]) -> _View:
        view = _view_from_fields(fields, time.monotonic())
        self._views[deployment_id] = view
        self._track(deployment_id, view.state)
        return view

    def _keep_local(self, deployment_id: uuid.UUID) -> _View:
        """Redis did not answer: act on what we knew, and do not ask again for a while."""
        view = self._views.get(deployment_id)
        if view is None:
            view = self._views[deployment_id] = _View()
        view.fetched_at = time.monotonic()
        return view

    def _redis_trouble(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._redis_down_logged > 10:
            self._redis_down_logged = now
            logger.warning("circuit state not shared: Redis unavailable", error=str(error))

    def _sync_client(self) -> Any:
        if self._sync is None:
            import redis

            client = redis.Redis.from_url(
                self.redis_url, socket_timeout=0.25, socket_connect_timeout=0.25
            )
            self._sync = (client, self._scripts(client))
        return self._sync[0]

    def _sync_scripts(self) -> dict[str, Any]:
        self._sync_client()
        return self._sync[1]

    def _async_entry(self) -> tuple[Any, dict[str, Any]]:
        # redis.asyncio connections belong to the loop that made them.
        loop = asyncio.get_running_loop()
        entry = self._async.get(loop)
        if entry is None:
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(
                self.redis_url, socket_timeout=0.25, socket_connect_timeout=0.25
            )
            entry = self._async[loop] = (client, self._scripts(client))
        return entry

    def _async_client(self) -> Any:
        return self._async_entry()[0]

    def _async_scripts(self) -> dict[str, Any]:
        return self._async_entry()[1]

    @staticmethod
    def _scripts(client: Any) -> dict[str, Any]:
        return {
            "failure": client.register_script(_LUA_FAILURE),
            "success": client.register_script(_LUA_SUCCESS),
            "claim": client.register_script(_LUA_CLAIM),
            "release": client.register_script(_LUA_RELEASE),
        }

    def close(self) -> None:
        if self._sync is not None:
            self._sync[0].close()
            self._sync = None

    async def aclose(self) -> None:
        """Close this event loop's Redis connections."""
        entry = self._async.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[0].aclose()

    # -- transitions: gauge and events ---------------------------------------------

    def _remember(self, deployment: DeploymentDTO) -> None:
        if deployment.id not in self._labels:
            self._labels[deployment.id] = (
                str(deployment.id),
                deployment.provider.name,
                deployment.name,
            )

    def _track(self, deployment_id: uuid.UUID, state: str) -> None:
        if self._gauge_state.get(deployment_id) == state:
            return
        self._gauge_state[deployment_id] = state
        labels = self._labels.get(deployment_id)
        if labels is not None:
            CIRCUIT_STATE.labels(*labels).set(_GAUGE_VALUE[CircuitState(state)])

    def _apply(self, deployment: DeploymentDTO, result: tuple[int, _View], reason: str) -> bool:
        transition, view = result
        self._track(deployment.id, view.state)
        if transition in (_OPENED, _REOPENED):
            why = (
                f"trial call failed: {reason}"
                if transition == _REOPENED
                else f"{self.threshold} consecutive failures, the last {reason}"
            )
            logger.warning("circuit opened", deployment=deployment.qualified_name, reason=why)
            self._publish(CircuitOpened, deployment, why)
        elif transition == _CLOSED:
            logger.info("circuit closed", deployment=deployment.qualified_name)
            self._publish(CircuitClosed, deployment, reason)
        return transition == _CLAIMED

    def _publish(self, event_type: type[Event], deployment: DeploymentDTO, reason: str) -> None:
        if self.notify is None:
            return
        event = event_type(
            deployment_id=deployment.id,
            provider_name=deployment.provider.name,
            model=deployment.name,
            reason=reason,
        )
        try:
            self.notify(event)
        except Exception:
            logger.exception("circuit event not handed over", event=event.key)


# -- bulkhead ---------------------------------------------------------------------------


class _Compartment:
    __slots__ = ("active", "limit", "semaphore")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.semaphore = asyncio.Semaphore(limit)
        self.active = 0


class Slot:
    """A bulkhead slot in use; ``release`` (idempotent) gives it back."""

    __slots__ = ("_compartment",)

    def __init__(self, compartment: _Compartment) -> None:
        self._compartment: _Compartment | None = compartment

    def release(self) -> None:
        compartment, self._compartment = self._compartment, None
        if compartment is not None:
            compartment.active -= 1
            compartment.semaphore.release()

    async def __aenter__(self) -> Slot:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class Bulkhead:
    """A concurrency limit per provider, per event loop (so per process under ASGI)."""

    def __init__(self, *, wait: float | None = None) -> None:
        self.wait = float(
            wait if wait is not None else _setting("LUMINA_BULKHEAD_WAIT", DEFAULT_BULKHEAD_WAIT)
        )
        self._loops: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[uuid.UUID, _Compartment]
        ] = weakref.WeakKeyDictionary()

    def _compartment(self, provider: ProviderDTO) -> _Compartment:
        loop = asyncio.get_running_loop()
        compartments = self._loops.get(loop)
        if compartments is None:
            compartments = self._loops[loop] = {}
        compartment = compartments.get(provider.id)
        limit = max(1, provider.max_concurrency)
        if compartment is None or compartment.limit != limit:
            # A changed limit gets a fresh compartment; calls holding the old one finish
            # there and release into it.
            compartment = compartments[provider.id] = _Compartment(limit)
        return compartment

    async def acquire(self, provider: ProviderDTO) -> Slot:
        """Take a slot, waiting up to ``wait`` seconds; ``ProviderBusyError`` if none."""
        compartment = self._compartment(provider)
        semaphore = compartment.semaphore
        if semaphore.locked():
            if self.wait <= 0:
                raise ProviderBusyError(provider, self.wait)
            try:
                async with asyncio.timeout(self.wait):
                    await semaphore.acquire()
            except TimeoutError:
                raise ProviderBusyError(provider, self.wait) from None
        else:
            await semaphore.acquire()  # a free slot: returns without suspending
        compartment.active += 1
        return Slot(compartment)

    def slot(self, provider: ProviderDTO) -> _SlotContext:
        """``async with bulkhead.slot(provider):`` around one call."""
        return _SlotContext(self, provider)

    def in_flight(self, provider: ProviderDTO) -> int:
        compartments = self._loops.get(asyncio.get_running_loop(), {})
        compartment = compartments.get(provider.id)
        return compartment.active if compartment is not None else 0


class _SlotContext:
    __slots__ = ("_bulkhead", "_provider", "_slot")

    def __init__(self, bulkhead: Bulkhead, provider: ProviderDTO) -> None:
        self._bulkhead, self._provider, self._slot = bulkhead, provider, None

    async def __aenter__(self) -> Slot:
        self._slot = await self._bulkhead.acquire(self._provider)
        return self._slot

    async def __aexit__(self, *exc: object) -> None:
        if self._slot is not None:
            self._slot.release()


# -- retries ----------------------------------------------------------------------------

# The hook sees every attempt: deployment, attempt number (from 1), the error (None on
# success) and the attempt's duration in seconds.
AttemptHook = Callable[[DeploymentDTO, int, UpstreamError | None, float], None]


class RetryPolicy:
    """Retries of one candidate with exponential backoff and jitter (tenacity)."""

    def __init__(
        self,
        *,
        retries: int | None = None,
        backoff: float | None = None,
        max_wait: float | None = None,
    ) -> None:
        self.retries = int(
            retries if retries is not None else _setting("LUMINA_PROVIDER_RETRIES", DEFAULT_RETRIES)
        )
        self.backoff = float(
            backoff
            if backoff is not None
            else _setting("LUMINA_PROVIDER_RETRY_BACKOFF", DEFAULT_RETRY_BACKOFF)
        )
        self.max_wait = float(
            max_wait
            if max_wait is not None
            else _setting("LUMINA_PROVIDER_RETRY_MAX_WAIT", DEFAULT_RETRY_MAX_WAIT)
        )
        self._backoff = wait_exponential_jitter(
            multiplier=self.backoff, max=self.max_wait, jitter=self.backoff
        )

    @property
    def attempts(self) -> int:
        return self.retries + 1

    def retryable(self, error: BaseException) -> bool:
        """Whether another attempt on the same candidate may succeed and is worth the wait."""
        if not isinstance(error, UpstreamError) or not error.retryable:
            return False
        if error.code in _OUR_CODES:
            return False  # busy or open here: the next candidate, not this one again
        return error.retry_after is None or error.retry_after <= self.max_wait

    def wait_for(self, retry_state: RetryCallState) -> float:
        """Backoff, but never sooner than the provider's ``Retry-After``."""
        wait = self._backoff(retry_state)
        error = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(error, "retry_after", None)
        if retry_after:
            wait = max(wait, float(retry_after))
        return min(wait, self.max_wait)

    async def call(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        deployment: DeploymentDTO,
        on_attempt: AttemptHook | None = None,
        may_retry: Callable[[BaseException], bool] | None = None,
    ) -> T:
        """``await fn()``, retried while the error allows; the last error is raised.

        ``may_retry`` can veto a retry (e.g. the circuit opened meanwhile).
        """

        def retry(error: BaseException) -> bool:
            return self.retryable(error) and (may_retry is None or may_retry(error))

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=self.wait_for,
            retry=retry_if_exception(retry),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number
                started = time.perf_counter()
                try:
                    result = await fn()
                except UpstreamError as error:
                    _call_hook(on_attempt, deployment, number, error, started)
                    raise
                _call_hook(on_attempt, deployment, number, None, started)
                return result
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    async def open_stream(
        self,
        factory: Callable[[], AsyncIterator[T]],
        *,
        deployment: DeploymentDTO,
        on_attempt: AttemptHook | None = None,
        may_retry: Callable[[BaseException], bool] | None = None,
    ) -> tuple[AsyncIterator[T], T]:
        """Open a stream and wait for its first item, retrying only up to that point.

        Returns ``(rest, first)``: ``rest`` yields the items after ``first``. An empty
        stream counts as a retryable ``upstream_stream_cut``.
        """

        async def opening() -> tuple[AsyncIterator[T], T]:
            stream = factory()
            return stream, await _first_item(stream)

        return await self.call(
            opening, deployment=deployment, on_attempt=on_attempt, may_retry=may_retry
        )


async def _first_item(stream: AsyncIterator[T]) -> T:
    try:
        return await anext(stream)
    except StopAsyncIteration:
        raise UpstreamError(
            "the provider ended the stream before sending anything",
            code="upstream_stream_cut",
            retryable=True,
        ) from None
    except BaseException:
        await _aclose(stream)
        raise


async def _aclose(stream: Any) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:
            logger.debug("closing a failed stream raised", exc_info=True)


def _call_hook(
    hook: AttemptHook | None,
    deployment: DeploymentDTO,
    number: int,
    error: UpstreamError | None,
    started: float,
) -> None:
    if hook is None or (error is not None and error.code in _OUR_CODES):
        return  # no provider was called: the refusal itself is the caller's to record
    try:
        hook(deployment, number, error, time.perf_counter() - started)
    except Exception:  # recording an attempt must never break the call
        logger.exception("attempt hook failed")


# -- latency statistics -----------------------------------------------------------------


class LatencyEntry:
    """One deployment's statistics: EWMAs in milliseconds (None until measured), the
    error rate's EWMA (0–1) and the number of calls seen. Live: read, do not write."""

    __slots__ = ("errors", "latency", "samples", "ttft")

    def __init__(self) -> None:
        self.latency: float | None = None
        self.ttft: float | None = None
        self.errors = 0.0
        self.samples = 0


class LatencyStats:
    """Per-deployment EWMAs of latency, time to first token and error rate, in process.

    Updates race benignly between threads (a lost sample at worst): these steer a
    preference, they are not accounting.
    """

    def __init__(self, *, alpha: float | None = None) -> None:
        self.alpha = float(
            alpha if alpha is not None else _setting("LUMINA_LATENCY_ALPHA", DEFAULT_LATENCY_ALPHA)
        )
        self._stats: dict[uuid.UUID, LatencyEntry] = {}

    def record(
        self,
        deployment_id: uuid.UUID,
        latency_ms: float | None,
        ttft_ms: float | None = None,
        ok: bool = True,
    ) -> None:
        """One call's outcome. A failed call moves only the error rate: a fast error
        must not make a deployment look fast."""
        stat = self._stats.get(deployment_id)
        if stat is None:
            stat = self._stats[deployment_id] = LatencyEntry()
        a = self.alpha
        stat.samples += 1
        stat.errors += a * ((0.0 if ok else 1.0) - stat.errors)
        if not ok:
            return
        if latency_ms is not None:
            stat.latency = (
                latency_ms
                if stat.latency is None
                else stat.latency + a * (latency_ms - stat.latency)
            )
        if ttft_ms is not None:
            stat.ttft = ttft_ms if stat.ttft is None else stat.ttft + a * (ttft_ms - stat.ttft)

    def seed(
        self, deployment_id: uuid.UUID, latency_ms: float | None, ttft_ms: float | None = None
    ) -> None:
        """Start from a probe's measurement, unless real traffic already taught us more."""
        stat = self._stats.get(deployment_id)
        if stat is None:
            stat = self._stats[deployment_id] = LatencyEntry()
        if stat.latency is None and latency_ms is not None:
            stat.latency = float(latency_ms)
        if stat.ttft is None and ttft_ms is not None:
            stat.ttft = float(ttft_ms)

    def latency_ms(self, deployment_id: uuid.UUID) -> float | None:
        stat = self._stats.get(deployment_id)
        return None if stat is None else stat.latency

    def ttft_ms(self, deployment_id: uuid.UUID) -> float | None:
        stat = self._stats.get(deployment_id)
        return None if stat is None else stat.ttft

    def error_rate(self, deployment_id: uuid.UUID) -> float:
        stat = self._stats.get(deployment_id)
        return 0.0 if stat is None else stat.errors

    def get(self, deployment_id: uuid.UUID) -> LatencyEntry | None:
        """All of a deployment's statistics in one look-up (selection reads this)."""
        return self._stats.get(deployment_id)

    def clear(self) -> None:
        self._stats.clear()


# -- the composition the completion path uses -------------------------------------------


class Resilience:
    """Breaker, bulkhead, retries and latency statistics around calls to one deployment."""

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

    def _may_retry(self, deployment: DeploymentDTO) -> Callable[[BaseException], bool]:
        # A failure that opened the circuit (a failed trial, the N-th failure) ends the
        # retries: the next attempt goes to another candidate.
        return lambda _error: self.breaker.state(deployment.id) != CircuitState.OPEN

    async def _enter(self, deployment: DeploymentDTO) -> Slot:
        if not await self.breaker.allow_async(deployment):
            raise CircuitOpenError(deployment)
        try:
            return await self.bulkhead.acquire(deployment.provider)
        except BaseException:
            await self.breaker.release_async(deployment)
            raise

    async def _failed(self, deployment: DeploymentDTO, error: BaseException) -> None:
        if counts_against_provider(error):
            self.stats.record(deployment.id, None, ok=False)
        await self.breaker.record_failure_async(deployment, error)

    async def call(
        self,
        deployment: DeploymentDTO,
        fn: Callable[[], Awaitable[T]],
        *,
        on_attempt: AttemptHook | None = None,
    ) -> T:
        """``await fn()`` against ``deployment`` with every protection; raises the last
        ``UpstreamError`` (``circuit_open`` and ``provider_busy`` included) so the caller
        moves to the next candidate."""

        async def attempt() -> T:
            slot = await self._enter(deployment)
            started = time.perf_counter()
            try:
                result = await fn()
            except BaseException as error:
                slot.release()
                await self._failed(deployment, error)
                raise
            slot.release()
            self.stats.record(deployment.id, (time.perf_counter() - started) * 1000)
            await self.breaker.record_success_async(deployment)
            return result

        return await self.retry.call(
            attempt,
            deployment=deployment,
            on_attempt=on_attempt,
            may_retry=self._may_retry(deployment),
        )

    async def open_stream(
        self,
        deployment: DeploymentDTO,
        factory: Callable[[], AsyncIterator[T]],
        *,
        on_attempt: AttemptHook | None = None,
    ) -> tuple[AsyncIterator[T], T]:
        """Open a stream with every protection, retrying until its first item arrives.

        Returns ``(rest, first)``. ``rest`` keeps the bulkhead slot until it is exhausted
        or closed (always ``aclose`` it), and records the outcome: a break after the first
        item counts against the deployment; a consumer that stops early does not.
        """

        async def attempt() -> tuple[AsyncIterator[T], T, Slot, float, float]:
            slot = await self._enter(deployment)
            started = time.perf_counter()
            try:
                stream = factory()
                first = await _first_item(stream)
            except BaseException as error:
                slot.release()
                await self._failed(deployment, error)
                raise
            return stream, first, slot, started, time.perf_counter()

        stream, first, slot, started, first_at = await self.retry.call(
            attempt,
            deployment=deployment,
            on_attempt=on_attempt,
            may_retry=self._may_retry(deployment),
        )
        # The first item proves the provider is up: that closes a half-open circuit now
        # rather than after a long generation.
        await self.breaker.record_success_async(deployment)
        ttft_ms = (first_at - started) * 1000
        return _GuardedStream(self, deployment, stream, slot, started, ttft_ms), first


class _GuardedStream:
    """The rest of a stream: holds its bulkhead slot and records how the stream ended.

    A class rather than an async generator so that ``aclose`` releases the slot even
    when iteration never started.
    """

    def __init__(
        self,
        resilience: Resilience,
        deployment: DeploymentDTO,
        stream: AsyncIterator[Any],
        slot: Slot,
        started: float,
        ttft_ms: float,
    ) -> None:
        self._resilience = resilience
        self._deployment = deployment
        self._stream = stream
        self._slot = slot
        self._started = started
        self._ttft_ms = ttft_ms
        self._done = False

    def __aiter__(self) -> _GuardedStream:
        return self

    async def __anext__(self) -> Any:
        if self._done:
            raise StopAsyncIteration
        try:
            return await anext(self._stream)
        except StopAsyncIteration:
            latency_ms = (time.perf_counter() - self._started) * 1000
            self._resilience.stats.record(self._deployment.id, latency_ms, self._ttft_ms)
            await self.aclose()
            raise
        except asyncio.CancelledError:
            raise  # the consumer went away: nothing to say about the provider
        except BaseException as error:
            await self.aclose()
            await self._resilience._failed(self._deployment, error)
            raise

    async def aclose(self) -> None:
        if self._done:
            return
        self._done = True
        self._slot.release()
        await _aclose(self._stream)

    def __del__(self) -> None:
        # A consumer that forgot ``aclose`` must not keep the provider's slot forever.
        try:
            self._slot.release()
        except Exception:  # a finaliser must not raise (e.g. its loop is already closed)
            logger.debug("releasing a forgotten stream's slot failed", exc_info=True)


@functools.cache
def circuit_breaker() -> CircuitBreaker:
    """This process's circuit breaker, configured from settings."""
    return CircuitBreaker()


@functools.cache
def bulkhead() -> Bulkhead:
    return Bulkhead()


@functools.cache
def retry_policy() -> RetryPolicy:
    return RetryPolicy()


@functools.cache
def latency_stats() -> LatencyStats:
    return LatencyStats()


@functools.cache
def resilience() -> Resilience:
    return Resilience(
        breaker=circuit_breaker(),
        bulkhead=bulkhead(),
        retry=retry_policy(),
        stats=latency_stats(),
    )


async def attempt_calls(
    deployment: DeploymentDTO,
    fn: Callable[[], Awaitable[T]],
    *,
    on_attempt: AttemptHook | None = None,
) -> T:
    """``resilience().call``: one candidate, with breaker, bulkhead, retries and stats."""
    return await resilience().call(deployment, fn, on_attempt=on_attempt)


async def attempt_stream(
    deployment: DeploymentDTO,
    factory: Callable[[], AsyncIterator[T]],
    *,
    on_attempt: AttemptHook | None = None,
) -> tuple[AsyncIterator[T], T]:
    """``resilience().open_stream``: ``(rest, first)`` of one candidate's stream."""
    return await resilience().open_stream(deployment, factory, on_attempt=on_attempt)
