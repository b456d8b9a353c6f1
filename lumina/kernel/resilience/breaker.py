"""Circuit breakers keyed by any name, shared between processes through Redis.

A circuit opens after ``failures`` consecutive failures of its key (consecutive, not a
rate over a window: one Redis counter is enough, and it reacts to an outage within N
calls whatever the traffic). Which errors count is the owner's call (``counts``): an
error that says nothing about the remote side (a bad request, our own refusal) should
not. After ``cooldown`` seconds one trial call goes through (half-open); its success
closes the circuit, its failure opens it again. A trial whose outcome never comes back
stops blocking others after ``trial_timeout`` (the cooldown by default).

With a Redis URL the state lives in one Redis hash per key, changed by atomic Lua
scripts, so every process sees an open circuit and exactly one process wins each
transition (and reports it through ``on_transition``). Each process keeps a local view
of each state, refreshed from Redis at most every ``refresh_interval``: a warm ``allow``
on a closed circuit is a dictionary look-up, with no round trip. Without Redis (or
while it does not answer) the same state machine runs in process. Processes sharing a
Redis need synchronised clocks (NTP): cooldowns are wall-clock times.

Every method is a coroutine: the breaker sits on event-loop paths, and its Redis client
is ``redis.asyncio``'s, one per event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import math
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import structlog
from django.conf import settings

logger = structlog.get_logger(__name__)

DEFAULT_FAILURES = 5
DEFAULT_COOLDOWN = 30.0
# Redis forgets a circuit nobody touched for a day (a closed one is simply absent).
KEY_TTL = 86_400
REDIS_TIMEOUT = 0.25


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


class CircuitOpenError(Exception):
    """The key's circuit is open: the call was not made."""

    def __init__(self, key: Hashable) -> None:
        super().__init__(f"the circuit of {key} is open")
        self.key = key


@dataclasses.dataclass(frozen=True)
class Transition:
    """A circuit opened (``opened``) or closed, as won by this process."""

    key: Hashable
    opened: bool
    reason: str


# Transitions a store reports back; only the process that made one reports it.
_NONE, _OPENED, _REOPENED, _CLOSED, _CLAIMED = 0, 1, 2, 3, 4


@dataclasses.dataclass(slots=True)
class _View:
    """One circuit as this process last saw it."""

    state: str = CircuitState.CLOSED
    failures: int = 0
    opened_until: float = 0.0  # wall clock (time.time), shared between processes
    trial_until: float = 0.0
    reason: str = ""
    fetched_at: float = -math.inf  # time.monotonic of the last read from the store

    def effective(self, now: float) -> CircuitState:
        """The state callers should act on: an open circuit past its cooldown is ready for
        a trial, so it counts as half-open."""
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


def _local_claim(view: _View, now: float, trial_until: float) -> int:
    if (view.state == CircuitState.OPEN and now >= view.opened_until) or (
        view.state == CircuitState.HALF_OPEN and now >= view.trial_until
    ):
        view.state, view.trial_until = CircuitState.HALF_OPEN, trial_until
        return _CLAIMED
    return _NONE


def _local_release(view: _View) -> int:
    if view.state == CircuitState.HALF_OPEN:
        view.trial_until = 0.0
    return _NONE


# Every script answers {transition, state, failures, opened_until, trial_until, reason}.
_LUA_READ = """
local v = redis.call('HMGET', KEYS[1], 's', 'f', 'u', 't', 'r')
"""
_LUA_ANSWER = """
v = redis.call('HMGET', KEYS[1], 's', 'f', 'u', 't', 'r')
return {transition, v[1], v[2], v[3], v[4], v[5]}
"""
# ARGV: threshold, opened_until, reason, ttl
LUA_FAILURE = (
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
LUA_SUCCESS = (
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
LUA_CLAIM = (
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
LUA_RELEASE = (
    _LUA_READ
    + """
local transition = 0
if v[1] == 'half_open' then redis.call('HSET', KEYS[1], 't', '0') end
"""
    + _LUA_ANSWER
)
_SCRIPTS = {
    "failure": LUA_FAILURE,
    "success": LUA_SUCCESS,
    "claim": LUA_CLAIM,
    "release": LUA_RELEASE,
}


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


def _every_error_counts(_error: BaseException) -> bool:
    return True


def _describe(error: BaseException) -> str:
    return getattr(error, "code", None) or type(error).__name__


_FROM_SETTINGS: Any = object()


class CircuitBreaker:
    """Circuit breakers for every key of one kind (``name``: "providers", "tools" …)."""

    def __init__(
        self,
        *,
        name: str,
        failures: int | None = None,
        cooldown: float | None = None,
        redis_url: str | None = _FROM_SETTINGS,
        prefix: str | None = None,
        refresh_interval: float = 1.0,
        trial_timeout: float | None = None,
        counts: Callable[[BaseException], bool] = _every_error_counts,
        describe: Callable[[BaseException], str] = _describe,
        on_transition: Callable[[Transition], None] | None = None,
        on_state: Callable[[Hashable, CircuitState], None] | None = None,
    ) -> None:
        self.name = name
        self.threshold = int(
            failures or getattr(settings, "LUMINA_BREAKER_FAILURES", None) or DEFAULT_FAILURES
        )
        configured = getattr(settings, "LUMINA_BREAKER_COOLDOWN", None)
        self.cooldown = float(cooldown if cooldown is not None else configured or DEFAULT_COOLDOWN)
        self.trial_timeout = float(trial_timeout if trial_timeout is not None else self.cooldown)
        self.refresh_interval = refresh_interval
        self.prefix = prefix or f"lumina:circuit:{name}"
        self.counts = counts
        self.describe = describe
        self.on_transition = on_transition
        self.on_state = on_state
        self.redis_url = (
            getattr(settings, "REDIS_URL", None) if redis_url is _FROM_SETTINGS else redis_url
        )
        self._views: dict[Hashable, _View] = {}
        self._reported: dict[Hashable, str] = {}  # the state last handed to on_state
        self._trials: set[Hashable] = set()  # trials this process holds
        self._refreshing: set[Hashable] = set()
        self._lock = threading.Lock()
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._redis_down_logged = 0.0

    @property
    def shared(self) -> bool:
        return bool(self.redis_url)

    # -- the hot path ----------------------------------------------------------------

    async def allow(self, key: Hashable) -> bool:
        """Whether a call for ``key`` may go ahead now (claims the trial when one is due)."""
        view = self._views.get(key)
        if self.redis_url:
            if view is None or (
                time.monotonic() - view.fetched_at >= self.refresh_interval
                and key not in self._refreshing  # else act on the view we have
            ):
                view = await self._refresh(key)
        elif view is None:
            return True
        if view.state == CircuitState.CLOSED:
            return True
        if not self._due_for_trial(view):
            return False
        now = time.time()
        claimed = await self._apply(key, "claim", (now, now + self.trial_timeout, KEY_TTL), "")
        if claimed:
            self._trials.add(key)
        return claimed

    def _due_for_trial(self, view: _View) -> bool:
        now = time.time()
        if view.state == CircuitState.OPEN:
            return now >= view.opened_until
        return now >= view.trial_until  # half-open: the last trial ended or timed out

    # -- outcomes --------------------------------------------------------------------

    async def record_success(self, key: Hashable) -> None:
        """The call succeeded: resets the failure count, closes a half-open circuit."""
        view = self._views.get(key)
        if view is None or (view.state == CircuitState.CLOSED and view.failures == 0):
            return  # nothing to reset: no write, no round trip
        self._trials.discard(key)
        await self._apply(key, "success", (), "trial call succeeded")

    async def record_failure(self, key: Hashable, error: BaseException) -> None:
        """Count ``error`` against ``key`` if ``counts`` says so; anything else only gives
        back a trial slot this process held."""
        if not self.counts(error):
            await self.release(key)
            return
        self._trials.discard(key)
        reason = self.describe(error)
        args = (self.threshold, time.time() + self.cooldown, reason[:200], KEY_TTL)
        await self._apply(key, "failure", args, reason)

    async def release(self, key: Hashable) -> None:
        """Give back a trial slot without a verdict (the call ended for another reason)."""
        if key in self._trials:
            self._trials.discard(key)
            await self._apply(key, "release", (), "")

    # -- reading states ----------------------------------------------------------------

    def state(self, key: Hashable) -> CircuitState:
        """The state as this process sees it now (no I/O)."""
        view = self._views.get(key)
        return CircuitState.CLOSED if view is None else view.effective(time.time())

    async def states(self, keys: Iterable[Hashable] = ()) -> dict[Hashable, CircuitState]:
        """Circuits that are not closed; stale views of ``keys`` are refreshed first (one
        Redis pipeline)."""
        if self.redis_url:
            # A key another call is refreshing already: act on the view we have (as
            # ``allow`` does), or every request in flight would ask Redis at once.
            stale = [
                key
                for key in keys
                if self._stale(key) and (key not in self._refreshing or key not in self._views)
            ]
            if stale:
                await self._refresh_many(stale)
        now = time.time()
        return {
            key: view.effective(now)
            for key, view in list(self._views.items())
            if view.state != CircuitState.CLOSED
        }

    def _stale(self, key: Hashable) -> bool:
        view = self._views.get(key)
        return view is None or time.monotonic() - view.fetched_at >= self.refresh_interval

    # -- the stores --------------------------------------------------------------------

    async def _apply(self, key: Hashable, op: str, args: tuple[Any, ...], reason: str) -> bool:
        """Run ``op`` on the store, report its transition; True when a trial was claimed."""
        transition, view = await self._run(key, op, args)
        self._report_state(key, view.state)
        if transition in (_OPENED, _REOPENED):
            why = (
                f"trial call failed: {reason}"
                if transition == _REOPENED
                else f"{self.threshold} consecutive failures, the last {reason}"
            )
            logger.warning("circuit opened", breaker=self.name, key=str(key), reason=why)
            self._notify(Transition(key, True, why))
        elif transition == _CLOSED:
            logger.info("circuit closed", breaker=self.name, key=str(key))
            self._notify(Transition(key, False, reason))
        return transition == _CLAIMED

    async def _run(self, key: Hashable, op: str, args: tuple[Any, ...]) -> tuple[int, _View]:
        if self.redis_url:
            try:
                scripts = self._client()[1]
                reply = await scripts[op](
                    keys=[f"{self.prefix}:{key}"], args=[_arg(a) for a in args]
                )
                view = self._views[key] = _view_from_fields(reply[1:6], time.monotonic())
                return int(reply[0]), view
            except Exception as error:  # Redis down: protect this process on its own
                self._redis_trouble(error)
        return self._run_locally(key, op, args)

    def _run_locally(self, key: Hashable, op: str, args: tuple[Any, ...]) -> tuple[int, _View]:
        with self._lock:
            view = self._views.get(key)
            if view is None:
                view = self._views[key] = _View(fetched_at=time.monotonic())
            if op == "failure":
                transition = _local_failure(view, args[0], float(args[1]), args[2])
            elif op == "success":
                transition = _local_success(view)
            elif op == "claim":
                transition = _local_claim(view, float(args[0]), float(args[1]))
            else:
                transition = _local_release(view)
            return transition, view

    async def _refresh(self, key: Hashable) -> _View:
        self._refreshing.add(key)
        try:
            fields = await self._client()[0].hmget(f"{self.prefix}:{key}", "s", "f", "u", "t", "r")
        except Exception as error:
            self._redis_trouble(error)
            return self._keep_local(key)
        finally:
            self._refreshing.discard(key)
        return self._store_view(key, fields)

    async def _refresh_many(self, keys: Sequence[Hashable]) -> None:
        self._refreshing.update(keys)
        try:
            pipe = self._client()[0].pipeline(transaction=False)
            for key in keys:
                pipe.hmget(f"{self.prefix}:{key}", "s", "f", "u", "t", "r")
            replies = await pipe.execute()
        except Exception as error:
            self._redis_trouble(error)
            for key in keys:
                self._keep_local(key)
            return
        finally:
            self._refreshing.difference_update(keys)
        for key, fields in zip(keys, replies, strict=True):
            self._store_view(key, fields)

    def _store_view(self, key: Hashable, fields: Sequence[Any]) -> _View:
        view = self._views[key] = _view_from_fields(fields, time.monotonic())
        self._report_state(key, view.state)
        return view

    def _keep_local(self, key: Hashable) -> _View:
        """Redis did not answer: act on what we knew, and do not ask again for a while."""
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = _View()
        view.fetched_at = time.monotonic()
        return view

    def _redis_trouble(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._redis_down_logged > 10:
            self._redis_down_logged = now
            logger.warning(
                "circuit state not shared: Redis unavailable", breaker=self.name, error=str(error)
            )

    def _client(self) -> tuple[Any, dict[str, Any]]:
        # redis.asyncio connections belong to the loop that made them.
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is None:
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(
                self.redis_url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
            )
            scripts = {op: client.register_script(lua) for op, lua in _SCRIPTS.items()}
            entry = self._clients[loop] = (client, scripts)
        return entry

    async def aclose(self) -> None:
        """Close this event loop's Redis connections."""
        entry = self._clients.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[0].aclose()

    # -- reporting -----------------------------------------------------------------------

    def _report_state(self, key: Hashable, state: str) -> None:
        if self.on_state is None or self._reported.get(key) == state:
            return
        self._reported[key] = state
        try:
            self.on_state(key, CircuitState(state))
        except Exception:
            logger.exception("circuit state hook failed", breaker=self.name)

    def _notify(self, transition: Transition) -> None:
        if self.on_transition is None:
            return
        try:
            self.on_transition(transition)
        except Exception:
            logger.exception("circuit transition hook failed", breaker=self.name)


def _arg(value: Any) -> Any:
    # Floats go to Lua as their repr: the shortest string that reads back exactly.
    return repr(value) if isinstance(value, float) else value
