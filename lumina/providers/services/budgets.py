"""Budgets and rate limits: admission before a request, settlement after it, and budget CRUD.

Rules (``Budget`` rows) apply per user and per API token: requests and tokens per fixed
60-second window, and money per calendar day, ISO week or month (UTC). ``budget_admit``
checks every rule that applies and reserves the request's estimate against all of them in
ONE atomic step, so two concurrent requests against a budget with room for one never both
pass; ``budget_settle`` replaces the estimate with what the request really used.

Where the counters live: with ``REDIS_URL`` set, in Redis, updated by one Lua script per
call (atomic across every process and server); without it, in this process's memory
under a lock, which holds for a single process only. Should Redis fail, admission falls
back to the in-process counters for a few seconds rather than refusing traffic.

The hot path: rules come from a per-process snapshot of the enabled budgets, replaced in
the background every ``RULES_REFRESH_SECONDS`` and at once when this process changes a
budget, so a request nobody has a budget for returns without any network call. Money
spent in the current period is seeded from the daily rollups the first time a period's
counter is needed, and expires after the period ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
import threading
import time
import uuid
import weakref
from decimal import ROUND_CEILING, Decimal
from typing import Any

import structlog
from django.conf import settings
from django.db import connection, transaction

from lumina.kernel.concurrency import run_sync
from lumina.kernel.errors import ApplicationError
from lumina.providers.events.usage import BudgetExceeded
from lumina.providers.models.usage import Budget
from lumina.providers.selectors.budgets import BudgetDTO, budget_dto, budget_get, budget_rules
from lumina.providers.selectors.costs import usage_spent
from lumina.providers.services.usage import usage_event_submit
from lumina.security.api import Actor, require

logger = structlog.get_logger(__name__)

# Who may create, change and remove budgets.
BUDGETS_MANAGE = "providers.change"
RULES_REFRESH_SECONDS = 5.0
DEFAULT_KEY_PREFIX = "lumina:budget:"
WINDOW_SECONDS = 60
NANOS = Decimal(1_000_000_000)  # counters hold money in nano-dollars (exact integers)
REDIS_RETRY_SECONDS = 5.0  # after a Redis failure, use in-process counters this long
REDIS_TIMEOUT_SECONDS = 0.5
_PERIOD_WORDS = {"day": "daily", "week": "weekly", "month": "monthly"}

REQUESTS, TOKENS, MONEY = "r", "t", "m"


def _usd(amount: Decimal) -> str:
    """``$1.50``, or as many places as it takes (``$0.0042``), up to four."""
    amount = amount.quantize(Decimal("0.0001"))
    cents = amount.quantize(Decimal("0.01"))
    return f"${cents}" if cents == amount else f"${amount.normalize():f}"


class BudgetExhaustedError(ApplicationError):
    """The money a budget allows for its period is spent."""

    code = "budget_exceeded"
    status = 402

    def __init__(
        self, budget: BudgetDTO, *, spent_usd: Decimal, period_start: dt.date, retry_after: int
    ) -> None:
        super().__init__(
            f"The {_PERIOD_WORDS[budget.period]} budget of {_usd(budget.limit_usd)} for this "
            f"{'API token' if budget.scope == Budget.Scope.TOKEN else 'user'} is spent "
            f"({_usd(spent_usd)} since {period_start.isoformat()})."
        )
        self.budget_id = budget.id
        self.period = budget.period
        self.limit_usd = budget.limit_usd
        self.spent_usd = spent_usd
        self.retry_after = retry_after  # seconds until the period ends


class RateLimitedError(ApplicationError):
    """Too many requests or tokens in the current minute; ``retry_after`` says when to retry."""

    code = "rate_limited"
    status = 429

    def __init__(self, budget: BudgetDTO, *, kind: str, limit: int, retry_after: int) -> None:
        what = "requests" if kind == REQUESTS else "tokens"
        super().__init__(
            f"Too many {what} per minute for this "
            f"{'API token' if budget.scope == Budget.Scope.TOKEN else 'user'} (limit {limit}); "
            f"retry in {retry_after} s."
        )
        self.budget_id = budget.id
        self.retry_after = retry_after


@dataclasses.dataclass(frozen=True)
class Reservation:
    key: str
    kind: str  # REQUESTS, TOKENS or MONEY
    amount: int  # requests, tokens or nano-dollars reserved


@dataclasses.dataclass(frozen=True)
class Admission:
    """What ``budget_admit`` reserved; hand it to ``budget_settle`` once, when the request ends."""

    reservations: tuple[Reservation, ...] = ()
    backend: str = ""  # "redis", "local", or "" when no rule applied

    @property
    def limited(self) -> bool:
        return bool(self.reservations)


UNLIMITED = Admission()


@dataclasses.dataclass(frozen=True)
class _Check:
    budget: BudgetDTO
    kind: str
    key: str
    limit: int
    amount: int
    expire_at: int  # epoch seconds
    retry_after: int
    period_start: dt.date | None = None
    announce_key: str = ""


# -- public API: the gateway's calls ---------------------------------------------------


async def budget_admit(
    *,
    user_id: uuid.UUID | None,
    token_id: uuid.UUID | None,
    estimated_tokens: int,
    estimated_cost: Decimal,
) -> Admission:
    """Reserve a request's estimate against every rule of its user and token, or refuse.

    Raises ``BudgetExhaustedError`` (402) or ``RateLimitedError`` (429). Without rules it
    returns ``UNLIMITED`` at once, without any I/O.
    """
    rules = _rules_cached(user_id, token_id)
    if rules is None:
        rules = await run_sync(_rules_loaded, user_id, token_id)
    if not rules:
        return UNLIMITED
    checks = _checks(rules, estimated_tokens, estimated_cost)
    backend = _redis_backend()
    if backend is not None:
        try:
            return _concluded(checks, await _admit_redis_async(backend, checks), "redis")
        except RedisError:
            _redis_failed()
    return _concluded(checks, await run_sync(_admit_local, checks), "local")


async def budget_settle(admission: Admission, *, tokens: int, cost: Decimal) -> None:
    """Replace the reserved estimate with the real tokens and cost (refunds the difference)."""
    keys, deltas = _deltas(admission, tokens, cost)
    if not keys:
        return
    if admission.backend == "redis":
        backend = _redis_backend(ignore_failures=True)
        if backend is None:
            return
        try:
            await backend.async_scripts().settle(keys=keys, args=deltas)
        except RedisError:
            logger.warning("budget settlement lost: Redis failed", exc_info=True)
    else:
        _local.settle(keys, deltas)


async def budget_remaining(
    *, user_id: uuid.UUID | None, token_id: uuid.UUID | None
) -> Decimal | None:
    """Money left before the tightest money budget of this user/token is spent; None if none."""
    rules = _rules_cached(user_id, token_id)
    if rules is None:
        rules = await run_sync(_rules_loaded, user_id, token_id)
    checks = [check for check in _checks(rules, 0, Decimal(0)) if check.kind == MONEY]
    if not checks:
        return None
    backend = _redis_backend()
    if backend is not None:
        try:
            client = backend.async_client()
            values = await client.mget([check.key for check in checks])
            if any(value is None for value in values):
                await _seed_async(client, checks, values)
                values = await client.mget([check.key for check in checks])
            return _remaining(checks, values)
        except RedisError:
            _redis_failed()
    return _remaining(checks, await run_sync(_local.values_seeded, checks))


# -- budget CRUD -------------------------------------------------------------------------

_EDITABLE = (
    "name", "scope", "subject_id", "period", "limit_usd", "requests_per_minute",
    "tokens_per_minute", "enabled",
)  # fmt: skip


def budget_create(
    *,
    actor: Actor,
    scope: str,
    subject_id: uuid.UUID,
    period: str = Budget.Period.MONTH,
    limit_usd: Decimal | None = None,
    requests_per_minute: int | None = None,
    tokens_per_minute: int | None = None,
    enabled: bool = True,
    name: str = "",
) -> BudgetDTO:
    require(actor, BUDGETS_MANAGE)
    budget = Budget(
        name=name,
        scope=scope,
        subject_id=subject_id,
        period=period,
        limit_usd=limit_usd,
        requests_per_minute=requests_per_minute,
        tokens_per_minute=tokens_per_minute,
        enabled=enabled,
    )
    with transaction.atomic():
        budget.full_clean()
        budget.save()
        transaction.on_commit(budget_cache_invalidate)
    budget_cache_invalidate()
    logger.info("budget created", budget_id=str(budget.id), scope=scope, actor=actor.principal)
    return budget_dto(budget)


def budget_update(*, actor: Actor, budget_id: uuid.UUID, **changes: Any) -> BudgetDTO:
    """Change the given fields (any of ``name, scope, subject_id, period, limit_usd,
    requests_per_minute, tokens_per_minute, enabled``)."""
    require(actor, BUDGETS_MANAGE)
    unknown = sorted(set(changes) - set(_EDITABLE))
    if unknown:
        raise ApplicationError(
            "Unknown budget fields.", fields={name: ["Not a budget field."] for name in unknown}
        )
    with transaction.atomic():
        budget = Budget.objects.select_for_update().filter(pk=budget_id).first()
        if budget is None:
            budget_get(budget_id=budget_id)  # raises NotFoundError
        for name, value in changes.items():
            setattr(budget, name, value)
        budget.full_clean()
        budget.save()
        transaction.on_commit(budget_cache_invalidate)
    budget_cache_invalidate()
    logger.info("budget changed", budget_id=str(budget_id), actor=actor.principal)
    return budget_dto(budget)


def budget_delete(*, actor: Actor, budget_id: uuid.UUID) -> None:
    require(actor, BUDGETS_MANAGE)
    deleted, _ = Budget.objects.filter(pk=budget_id).delete()
    if not deleted:
        budget_get(budget_id=budget_id)  # raises NotFoundError
    budget_cache_invalidate()
    logger.info("budget deleted", budget_id=str(budget_id), actor=actor.principal)


# -- the rules snapshot ------------------------------------------------------------------


class _Snapshot:
    def __init__(self, rules: dict[tuple[str, uuid.UUID], tuple[BudgetDTO, ...]]) -> None:
        self.rules = rules
        self.loaded_at = time.monotonic()


_snapshot: _Snapshot | None = None
_snapshot_lock = threading.Lock()
_refreshing = threading.Event()
# Moved by every invalidation: a refresh that read the rules before one is not installed.
_generation = 0


def budget_cache_invalidate() -> None:
    """Forget this process's rules snapshot; the next admission reloads it."""
    global _snapshot, _generation
    with _snapshot_lock:
        _generation += 1
        _snapshot = None


def _applicable(
    snapshot: _Snapshot, user_id: uuid.UUID | None, token_id: uuid.UUID | None
) -> tuple[BudgetDTO, ...]:
    found: tuple[BudgetDTO, ...] = ()
    if user_id is not None:
        found += snapshot.rules.get((Budget.Scope.USER.value, user_id), ())
    if token_id is not None:
        found += snapshot.rules.get((Budget.Scope.TOKEN.value, token_id), ())
    return found


def _rules_cached(
    user_id: uuid.UUID | None, token_id: uuid.UUID | None
) -> tuple[BudgetDTO, ...] | None:
    """The rules from the snapshot, or None when there is no snapshot yet."""
    snapshot = _snapshot
    if snapshot is None:
        return None
    if time.monotonic() - snapshot.loaded_at >= RULES_REFRESH_SECONDS:
        _refresh_in_background()
    return _applicable(snapshot, user_id, token_id)


def _rules_loaded(user_id: uuid.UUID | None, token_id: uuid.UUID | None) -> tuple[BudgetDTO, ...]:
    global _snapshot
    with _snapshot_lock:
        snapshot = _snapshot
        if snapshot is None:
            snapshot = _snapshot = _Snapshot(budget_rules())
    return _applicable(snapshot, user_id, token_id)


def _refresh_in_background() -> None:
    # Requests keep the slightly stale snapshot meanwhile: none of them waits for the database.
    if _refreshing.is_set():
        return
    _refreshing.set()
    threading.Thread(target=_refresh, name="budget-rules-refresh", daemon=True).start()


def _refresh() -> None:
    global _snapshot
    try:
        generation = _generation
        fresh = _Snapshot(budget_rules())
        with _snapshot_lock:
            # After an invalidation these rules may predate the change (and a request may
            # already have loaded the new ones): the next admission reloads instead.
            if _snapshot is not None and _generation == generation:
                _snapshot = fresh
    except Exception:
        logger.warning("budget rules refresh failed; keeping the previous ones", exc_info=True)
    finally:
        _refreshing.clear()
        connection.close()


# -- checks: what each rule asks of this request ---------------------------------------


def _nanos(amount: Decimal) -> int:
    return max(0, int((amount * NANOS).to_integral_value(rounding=ROUND_CEILING)))


def _period(period: str, now: dt.datetime) -> tuple[dt.date, dt.datetime]:
    today = now.date()
    if period == Budget.Period.DAY:
        start, end = today, today + dt.timedelta(days=1)
    elif period == Budget.Period.WEEK:
        start = today - dt.timedelta(days=today.weekday())
        end = start + dt.timedelta(days=7)
    else:
        start = today.replace(day=1)
        end = (start + dt.timedelta(days=32)).replace(day=1)
    return start, dt.datetime.combine(end, dt.time(), dt.UTC)


def _key_prefix() -> str:
    return getattr(settings, "LUMINA_BUDGET_KEY_PREFIX", DEFAULT_KEY_PREFIX)


def _checks(
    rules: tuple[BudgetDTO, ...], estimated_tokens: int, estimated_cost: Decimal
) -> list[_Check]:
    """Money rules first (their refusal is the one that lasts), then the per-minute ones."""
    now = dt.datetime.now(dt.UTC)
    epoch = now.timestamp()
    window = int(epoch // WINDOW_SECONDS)
    window_end = (window + 1) * WINDOW_SECONDS
    retry_after = max(1, math.ceil(window_end - epoch))
    prefix = _key_prefix()
    money: list[_Check] = []
    rates: list[_Check] = []
    for budget in rules:
        base = f"{prefix}{budget.id}"
        if budget.limit_usd is not None:
            start, end = _period(budget.period, now)
            money.append(
                _Check(
                    budget=budget,
                    kind=MONEY,
                    key=f"{base}:spent:{budget.period}:{start.isoformat()}",
                    limit=_nanos(budget.limit_usd),
                    amount=_nanos(estimated_cost),
                    # A day's grace, so a late settlement still finds the period's counter.
                    expire_at=int(end.timestamp()) + 86_400,
                    retry_after=max(1, int(end.timestamp() - epoch)),
                    period_start=start,
                    announce_key=f"{base}:exceeded:{budget.period}:{start.isoformat()}",
                )
            )
        for kind, limit, amount in (
            (REQUESTS, budget.requests_per_minute, 1),
            (TOKENS, budget.tokens_per_minute, max(0, estimated_tokens)),
        ):
            if limit is not None:
                rates.append(
                    _Check(
                        budget=budget,
                        kind=kind,
                        key=f"{base}:{kind}pm:{window}",
                        limit=limit,
                        amount=amount,
                        expire_at=window_end + WINDOW_SECONDS,
                        retry_after=retry_after,
                    )
                )
    return money + rates


def _refused(check: _Check, current: int, announce: bool) -> ApplicationError:
    if check.kind != MONEY:
        return RateLimitedError(
            check.budget, kind=check.kind, limit=check.limit, retry_after=check.retry_after
        )
    spent = Decimal(current) / NANOS
    if announce:
        usage_event_submit(
            BudgetExceeded(
                budget_id=check.budget.id,
                scope=check.budget.scope,
                subject_id=check.budget.subject_id,
                period=check.budget.period,
                period_start=check.period_start,
                limit_usd=check.budget.limit_usd,
                spent_usd=spent,
            )
        )
    return BudgetExhaustedError(
        check.budget,
        spent_usd=spent,
        period_start=check.period_start,
        retry_after=check.retry_after,
    )


def _concluded(checks: list[_Check], outcome: tuple[int, int, bool] | None, backend: str):
    """``outcome`` is None when admitted, else (index of the refusing check, its value, first)."""
    if outcome is not None:
        index, current, announce = outcome
        raise _refused(checks[index], current, announce)
    return Admission(
        reservations=tuple(Reservation(c.key, c.kind, c.amount) for c in checks),
        backend=backend,
    )


def _deltas(admission: Admission, tokens: int, cost: Decimal) -> tuple[list[str], list[int]]:
    keys: list[str] = []
    deltas: list[int] = []
    for reservation in admission.reservations:
        if reservation.kind == TOKENS:
            delta = max(0, tokens) - reservation.amount
        elif reservation.kind == MONEY:
            delta = _nanos(cost) - reservation.amount
        else:
            continue
        if delta:
            keys.append(reservation.key)
            deltas.append(delta)
    return keys, deltas


def _remaining(checks: list[_Check], values: list[Any]) -> Decimal:
    left = min(check.limit - int(value or 0) for check, value in zip(checks, values, strict=True))
    return max(Decimal(0), Decimal(left) / NANOS)


def _seed_amounts(checks: list[_Check]) -> list[int]:
    """Money already spent in each check's period, from the daily rollups (database)."""
    return [
        _nanos(
            usage_spent(
                scope=check.budget.scope,
                subject_id=check.budget.subject_id,
                since=check.period_start,
            )
        )
        for check in checks
    ]


# -- Redis -------------------------------------------------------------------------------

# KEYS[i]: the counter of check i; KEYS[n + i]: its "exceeded already announced" flag.
# ARGV[1] = n, then per check: kind, limit, amount, expire_at.
# Returns {1} admitted (all reserved), {0, i, current, first_refusal} refused by check i,
# or {-1, i, j, ...}: these money counters must be seeded first (nothing reserved).
ADMIT_LUA = """
local n = tonumber(ARGV[1])
local current = {}
local missing = {}
for i = 1, n do
  local value = redis.call('GET', KEYS[i])
  if value then
    current[i] = tonumber(value)
  else
    current[i] = 0
    if ARGV[4 * i - 2] == 'm' then missing[#missing + 1] = i end
  end
end
if #missing > 0 then
  table.insert(missing, 1, -1)
  return missing
end
for i = 1, n do
  local kind = ARGV[4 * i - 2]
  local limit = tonumber(ARGV[4 * i - 1])
  local amount = tonumber(ARGV[4 * i])
  local value = current[i]
  local refused
  if kind == 'r' then
    refused = value + amount > limit
  elseif kind == 't' then
    refused = value > 0 and value + amount > limit
  else
    refused = value >= limit or value + amount > limit
  end
  if refused then
    local first = 0
    if kind == 'm' and redis.call('SET', KEYS[n + i], '1', 'NX', 'EXAT', ARGV[4 * i + 1]) then
      first = 1
    end
    return {0, i, value, first}
  end
end
for i = 1, n do
  redis.call('INCRBY', KEYS[i], ARGV[4 * i])
  if redis.call('TTL', KEYS[i]) < 0 then
    redis.call('EXPIREAT', KEYS[i], ARGV[4 * i + 1])
  end
end
return {1}
"""

# KEYS: counters; ARGV: the change of each. A counter that has expired stays gone.
SETTLE_LUA = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('INCRBY', KEYS[i], ARGV[i])
  end
end
return 1
"""


@dataclasses.dataclass
class _Scripts:
    client: Any
    admit: Any
    settle: Any


class _NoRedis(Exception):
    """Never raised: stands for ``redis.RedisError`` until a Redis backend imports redis."""


# redis is imported with the first Redis-backed budget: without REDIS_URL it is not loaded.
RedisError: type[Exception] = _NoRedis


class _RedisBackend:
    """Clients and registered scripts for one Redis URL, one set per event loop."""

    def __init__(self, url: str) -> None:
        global RedisError
        import redis

        RedisError = redis.RedisError
        self.url = url
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Scripts] = (
            weakref.WeakKeyDictionary()
        )

    def _options(self) -> dict[str, Any]:
        return {
            "socket_timeout": REDIS_TIMEOUT_SECONDS,
            "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
            "decode_responses": True,
        }

    def async_scripts(self) -> _Scripts:
        # An asyncio client belongs to the loop it was made on.
        loop = asyncio.get_running_loop()
        scripts = self._by_loop.get(loop)
        if scripts is None:
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(self.url, **self._options())
            scripts = _Scripts(
                client, client.register_script(ADMIT_LUA), client.register_script(SETTLE_LUA)
            )
            self._by_loop[loop] = scripts
        return scripts

    def async_client(self):
        return self.async_scripts().client


_backends: dict[str, _RedisBackend] = {}
_redis_down_until = 0.0


def _redis_backend(*, ignore_failures: bool = False) -> _RedisBackend | None:
    url = settings.REDIS_URL
    if not url or (not ignore_failures and time.monotonic() < _redis_down_until):
        return None
    backend = _backends.get(url)
    if backend is None:
        backend = _backends.setdefault(url, _RedisBackend(url))
    return backend


def _redis_failed() -> None:
    global _redis_down_until
    _redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
    logger.error(
        "Redis failed: budgets are enforced per process for a while",
        retry_in_seconds=REDIS_RETRY_SECONDS,
        exc_info=True,
    )


def _script_args(checks: list[_Check]) -> tuple[list[str], list[Any]]:
    keys = [check.key for check in checks] + [check.announce_key or check.key for check in checks]
    args: list[Any] = [len(checks)]
    for check in checks:
        args += [check.kind, check.limit, check.amount, check.expire_at]
    return keys, args


def _outcome(reply: list[int]) -> tuple[int, int, bool] | list[int] | None:
    if reply[0] == 1:
        return None
    if reply[0] == 0:
        return int(reply[1]) - 1, int(reply[2]), bool(reply[3])
    return [int(i) - 1 for i in reply[1:]]


async def _admit_redis_async(backend: _RedisBackend, checks: list[_Check]):
    scripts = backend.async_scripts()
    keys, args = _script_args(checks)
    for _ in range(3):
        outcome = _outcome(await scripts.admit(keys=keys, args=args))
        if not isinstance(outcome, list):
            return outcome
        await _seed_async(scripts.client, [checks[i] for i in outcome])
    raise RedisError("budget counters vanished while being seeded")


async def _seed_async(client, checks: list[_Check], values: list[Any] | None = None) -> None:
    if values is not None:
        checks = [check for check, value in zip(checks, values, strict=True) if value is None]
    amounts = await run_sync(_seed_amounts, checks)
    async with client.pipeline(transaction=False) as pipe:
        for check, amount in zip(checks, amounts, strict=True):
            pipe.set(check.key, amount, nx=True, exat=check.expire_at)
        await pipe.execute()


# -- in-process counters (no Redis) --------------------------------------------------------


class _LocalCounters:
    """The same rules as the Lua script, for one process, under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, list[float]] = {}  # key -> [value, expires at (epoch)]
        self._swept_at = 0.0

    def _get(self, key: str, now: float) -> int | None:
        found = self._values.get(key)
        if found is None or found[1] <= now:
            return None
        return int(found[0])

    def _sweep(self, now: float) -> None:
        if now - self._swept_at >= WINDOW_SECONDS:
            self._swept_at = now
            for key in [k for k, (_, expires) in self._values.items() if expires <= now]:
                del self._values[key]

    def admit(self, checks: list[_Check]) -> tuple[int, int, bool] | list[int] | None:
        now = time.time()
        with self._lock:
            self._sweep(now)
            current = [self._get(check.key, now) for check in checks]
            missing = [i for i, c in enumerate(checks) if c.kind == MONEY and current[i] is None]
            if missing:
                return missing
            for i, check in enumerate(checks):
                value = current[i] or 0
                if check.kind == REQUESTS:
                    refused = value + check.amount > check.limit
                elif check.kind == TOKENS:
                    refused = value > 0 and value + check.amount > check.limit
                else:
                    refused = value >= check.limit or value + check.amount > check.limit
                if refused:
                    first = False
                    if check.kind == MONEY and self._get(check.announce_key, now) is None:
                        self._values[check.announce_key] = [1, check.expire_at]
                        first = True
                    return i, value, first
            for i, check in enumerate(checks):
                self._values[check.key] = [(current[i] or 0) + check.amount, check.expire_at]
        return None

    def seed(self, checks: list[_Check], amounts: list[int]) -> None:
        now = time.time()
        with self._lock:
            for check, amount in zip(checks, amounts, strict=True):
                if self._get(check.key, now) is None:
                    self._values[check.key] = [amount, check.expire_at]

    def settle(self, keys: list[str], deltas: list[int]) -> None:
        now = time.time()
        with self._lock:
            for key, delta in zip(keys, deltas, strict=True):
                if self._get(key, now) is not None:
                    self._values[key][0] += delta

    def values_seeded(self, checks: list[_Check]) -> list[int]:
        now = time.time()
        with self._lock:
            missing = [check for check in checks if self._get(check.key, now) is None]
        if missing:
            self.seed(missing, _seed_amounts(missing))
        with self._lock:
            return [self._get(check.key, now) or 0 for check in checks]

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


_local = _LocalCounters()


def _admit_local(checks: list[_Check]) -> tuple[int, int, bool] | None:
    for _ in range(3):
        outcome = _local.admit(checks)
        if not isinstance(outcome, list):
            return outcome
        missing = [checks[i] for i in outcome]
        _local.seed(missing, _seed_amounts(missing))
    raise RuntimeError("budget counters vanished while being seeded")
