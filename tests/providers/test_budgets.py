"""Budgets and rate limits: atomic admission in Redis (and in-process), settlement, events."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
import uuid
from decimal import Decimal

import pytest
from structlog.testing import capture_logs

from lumina.kernel.errors import PermissionDeniedError
from lumina.kernel.models import OutboxEvent
from lumina.providers.models.usage import Budget, DailyUsage
from lumina.providers.services import budgets as budget_services
from lumina.providers.services.budgets import (
    UNLIMITED,
    Admission,
    BudgetExhaustedError,
    RateLimitedError,
    budget_admit,
    budget_create,
    budget_remaining,
    budget_settle,
)
from lumina.providers.services.usage import usage_flush
from lumina.security.api import Actor
from tests.providers import usage_support
from tests.providers.usage_support import (
    ALICE,
    BOB,
    TOKEN,
    fresh_window,
)

# Fixtures of tests/providers/usage_support.py used here.
ledger = usage_support.ledger
budgets = usage_support.budgets
redis_budgets = usage_support.redis_budgets

# Transactional: admission runs as in production, on an event loop, and reads the database
# from a worker thread (its own connection), which sees only committed rows.
pytestmark = pytest.mark.django_db(transaction=True)
SYSTEM = Actor.system("providers")


def _budget(**fields) -> Budget:
    return Budget.objects.create(**{"scope": "user", "subject_id": ALICE, **fields})


def _admit(user_id=ALICE, token_id=None, tokens=10, cost="0"):
    return asyncio.run(
        budget_admit(
            user_id=user_id,
            token_id=token_id,
            estimated_tokens=tokens,
            estimated_cost=Decimal(cost),
        )
    )


def _remaining(*, user_id, token_id):
    return asyncio.run(budget_remaining(user_id=user_id, token_id=token_id))


def _settle(admission, *, tokens, cost):
    asyncio.run(budget_settle(admission, tokens=tokens, cost=cost))


def _race(count: int, admit) -> list:
    """Run ``admit`` in ``count`` threads released at the same instant; return the outcomes."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = admit()
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results


# -- atomicity --------------------------------------------------------------------------


def test_two_concurrent_admissions_with_room_for_one_let_exactly_one_through(redis_budgets):
    _budget(limit_usd=Decimal("1.00"))
    # Loads the rules and seeds the month's counter from the rollups, in this thread.
    assert _remaining(user_id=ALICE, token_id=None) == Decimal(1)

    async def two_at_once():
        return await asyncio.gather(
            *(
                budget_admit(
                    user_id=ALICE,
                    token_id=None,
                    estimated_tokens=10,
                    estimated_cost=Decimal("0.6"),
                )
                for _ in range(2)
            ),
            return_exceptions=True,
        )

    results = asyncio.run(two_at_once())
    assert sorted(type(result).__name__ for result in results) == [
        "Admission",
        "BudgetExhaustedError",
    ]
    assert [r.backend for r in results if isinstance(r, Admission)] == ["redis"]


def test_many_threads_racing_for_room_for_one_let_exactly_one_through(redis_budgets):
    _budget(limit_usd=Decimal("1.00"))
    _remaining(user_id=ALICE, token_id=None)
    results = _race(12, lambda: _admit(cost="0.6"))
    assert sum(isinstance(result, Admission) for result in results) == 1
    assert sum(isinstance(result, BudgetExhaustedError) for result in results) == 11


def test_in_process_counters_are_atomic_too_without_redis(budgets):
    _budget(limit_usd=Decimal("1.00"), requests_per_minute=1000)
    _remaining(user_id=ALICE, token_id=None)
    results = _race(12, lambda: _admit(cost="0.6"))
    assert sum(isinstance(result, Admission) for result in results) == 1
    assert [r.backend for r in results if isinstance(r, Admission)] == ["local"]


# -- rate limits ------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["redis_budgets", "budgets"])
def test_requests_beyond_the_per_minute_limit_get_429_with_retry_after(store, request):
    request.getfixturevalue(store)
    _budget(requests_per_minute=2)
    fresh_window()
    _admit()
    _admit()
    with pytest.raises(RateLimitedError) as refused:
        _admit()
    assert refused.value.status == 429
    assert refused.value.code == "rate_limited"
    assert 1 <= refused.value.retry_after <= 60
    assert "requests per minute" in refused.value.message
    assert "limit 2" in refused.value.message


@pytest.mark.parametrize("store", ["redis_budgets", "budgets"])
def test_tokens_per_minute_are_reserved_and_settling_refunds_the_rest(store, request):
    request.getfixturevalue(store)
    _budget(tokens_per_minute=1000)
    fresh_window()
    first = _admit(tokens=600)
    with pytest.raises(RateLimitedError):
        _admit(tokens=600)
    _settle(first, tokens=100, cost=Decimal(0))  # it used far fewer
    _admit(tokens=600)  # 100 + 600 fits now


def test_a_request_larger_than_the_token_limit_passes_alone_in_an_empty_window(redis_budgets):
    _budget(tokens_per_minute=100)
    fresh_window()
    _admit(tokens=5000)  # otherwise it could never run
    with pytest.raises(RateLimitedError):
        _admit(tokens=1)


# -- money --------------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["redis_budgets", "budgets"])
def test_settling_replaces_the_estimate_with_the_real_cost(store, request):
    request.getfixturevalue(store)
    _budget(limit_usd=Decimal("1.00"))
    admission = _admit(cost="0.8")
    assert _remaining(user_id=ALICE, token_id=None) == Decimal("0.2")
    with pytest.raises(BudgetExhaustedError):
        _admit(cost="0.8")
    _settle(admission, tokens=50, cost=Decimal("0.1"))
    assert _remaining(user_id=ALICE, token_id=None) == Decimal("0.9")
    _admit(cost="0.8")


def test_money_already_spent_this_period_is_seeded_from_the_daily_rollups(redis_budgets):
    today = dt.datetime.now(dt.UTC).date()
    DailyUsage.objects.create(day=today, user_id=ALICE, operation="chat", requests=3,
                              cost=Decimal("0.95"))  # fmt: skip
    DailyUsage.objects.create(day=today - dt.timedelta(days=400), user_id=ALICE,
                              operation="chat", requests=1, cost=Decimal(50))  # fmt: skip
    _budget(limit_usd=Decimal("1.00"), period="month")
    with pytest.raises(BudgetExhaustedError) as refused:
        _admit(cost="0.10")
    error = refused.value
    assert (error.status, error.code) == (402, "budget_exceeded")
    assert error.message.startswith("The monthly budget of $1.00 for this user is spent ($0.95 ")
    assert error.spent_usd == Decimal("0.95")
    assert error.limit_usd == Decimal("1.00")
    _admit(cost="0.05")  # exactly the rest still fits
    (key,) = [k for k in redis_budgets.keys_with_prefix() if ":spent:" in k]
    end = dt.datetime.combine((today.replace(day=1) + dt.timedelta(days=32)).replace(day=1),
                              dt.time(), dt.UTC)  # fmt: skip
    assert abs(redis_budgets.redis.expiretime(key) - (end.timestamp() + 86_400)) <= 1


def test_budget_exceeded_is_published_once_per_budget_and_period(budgets):
    budget = _budget(limit_usd=Decimal("0.50"), period="day")
    _admit(cost="0.5")
    for _ in range(3):
        with pytest.raises(BudgetExhaustedError) as refused:
            _admit(cost="0.01")
    assert "daily budget of $0.50 for this user" in refused.value.message
    usage_flush()  # the event rides with the ledger writer, off the request's path
    (event,) = OutboxEvent.objects.filter(name="providers.BudgetExceeded")
    assert event.payload["budget_id"] == str(budget.id)
    assert event.payload["subject_id"] == str(ALICE)
    assert event.payload["period"] == "day"
    assert event.payload["period_start"] == dt.datetime.now(dt.UTC).date().isoformat()
    assert Decimal(event.payload["spent_usd"]) == Decimal("0.5")
    assert Decimal(event.payload["limit_usd"]) == Decimal("0.5")


def test_budget_exceeded_is_announced_once_across_processes_with_redis(redis_budgets):
    _budget(limit_usd=Decimal(0))
    for _ in range(2):
        with pytest.raises(BudgetExhaustedError):
            _admit()
    redis_budgets.services._local.clear()  # another process has no memory of it either
    with pytest.raises(BudgetExhaustedError):
        _admit()
    usage_flush()
    assert OutboxEvent.objects.filter(name="providers.BudgetExceeded").count() == 1


def test_the_remaining_money_is_that_of_the_tightest_budget(redis_budgets):
    assert _remaining(user_id=ALICE, token_id=TOKEN) is None
    _budget(requests_per_minute=10)
    redis_budgets.services.budget_cache_invalidate()
    assert _remaining(user_id=ALICE, token_id=TOKEN) is None  # no money rule
    _budget(limit_usd=Decimal(5), period="month")
    _budget(scope="token", subject_id=TOKEN, limit_usd=Decimal(2), period="day")
    redis_budgets.services.budget_cache_invalidate()
    _admit(token_id=TOKEN, cost="0.5")
    assert _remaining(user_id=ALICE, token_id=TOKEN) == Decimal("1.5")
    assert _remaining(user_id=ALICE, token_id=None) == Decimal("4.5")


def test_a_token_budget_limits_that_token_only(budgets):
    _budget(scope="token", subject_id=TOKEN, requests_per_minute=1)
    fresh_window()
    _admit(token_id=TOKEN)
    with pytest.raises(RateLimitedError) as refused:
        _admit(token_id=TOKEN)
    assert "API token" in refused.value.message
    assert _admit(token_id=uuid.uuid4()) is UNLIMITED  # another token of the same user


# -- the hot path -------------------------------------------------------------------------


def test_no_redis_call_is_made_when_no_rule_applies(redis_budgets, monkeypatch):
    _budget(subject_id=BOB, requests_per_minute=1)
    _admit(user_id=BOB)  # rules loaded

    def no_redis(*args, **kwargs):
        raise AssertionError("Redis was called")

    monkeypatch.setattr(budget_services, "_redis_backend", no_redis)
    assert _admit(user_id=ALICE, token_id=TOKEN) is UNLIMITED
    admission = asyncio.run(
        budget_admit(user_id=ALICE, token_id=TOKEN, estimated_tokens=5, estimated_cost=Decimal(1))
    )
    assert admission is UNLIMITED
    asyncio.run(budget_settle(admission, tokens=5, cost=Decimal(1)))


def test_async_admission_and_settlement_use_redis(redis_budgets):
    _budget(limit_usd=Decimal(1), tokens_per_minute=10_000)
    _remaining(user_id=ALICE, token_id=None)
    fresh_window()

    async def request():
        admission = await budget_admit(
            user_id=ALICE, token_id=None, estimated_tokens=400, estimated_cost=Decimal("0.4")
        )
        await budget_settle(admission, tokens=100, cost=Decimal("0.1"))
        return admission

    admission = asyncio.run(request())
    assert admission.backend == "redis"
    assert {r.kind for r in admission.reservations} == {"m", "t"}
    keys = redis_budgets.keys_with_prefix()
    spent = next(key for key in keys if ":spent:" in key)
    tokens = next(key for key in keys if ":tpm:" in key)
    assert int(redis_budgets.redis.get(spent)) == 100_000_000  # $0.10 in nano-dollars
    assert int(redis_budgets.redis.get(tokens)) == 100


def test_a_redis_outage_falls_back_to_in_process_counters(budgets, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    _budget(requests_per_minute=1)
    fresh_window()
    with capture_logs() as logs:
        admission = _admit()
    assert admission.backend == "local"
    assert any("Redis failed" in log["event"] for log in logs)
    with pytest.raises(RateLimitedError):
        _admit()


def test_a_budget_created_through_the_service_applies_at_once(budgets):
    assert _admit() is UNLIMITED
    budget_create(actor=SYSTEM, scope="user", subject_id=ALICE, requests_per_minute=1)
    fresh_window()
    assert _admit().limited
    with pytest.raises(RateLimitedError):
        _admit()


def test_managing_budgets_needs_the_permission(budgets):
    with pytest.raises(PermissionDeniedError):
        budget_create(
            actor=Actor(user_id=uuid.uuid4()),
            scope="user",
            subject_id=ALICE,
            requests_per_minute=1,
        )
    assert not Budget.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_other_processes_changes_are_picked_up_within_the_refresh_interval(budgets, monkeypatch):
    assert _admit() is UNLIMITED  # snapshot loaded, without rules
    _budget(requests_per_minute=1)  # as if another process had added it
    monkeypatch.setattr(budget_services, "RULES_REFRESH_SECONDS", 0.0)
    assert _admit() is UNLIMITED  # the stale snapshot answers; a refresh starts behind it
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and budget_services._refreshing.is_set():
        time.sleep(0.01)
    fresh_window()
    assert _admit().limited


def test_a_refresh_that_read_the_rules_before_a_change_does_not_undo_it(budgets, monkeypatch):
    assert _admit() is UNLIMITED  # snapshot loaded, without rules
    read, release = threading.Event(), threading.Event()
    real_rules = budget_services.budget_rules

    def rules_read_before_the_change():
        rules = real_rules()
        read.set()
        release.wait(10)  # the change, its invalidation and a reload happen meanwhile
        return rules

    monkeypatch.setattr(budget_services, "budget_rules", rules_read_before_the_change)
    monkeypatch.setattr(budget_services, "RULES_REFRESH_SECONDS", 0.0)
    assert _admit() is UNLIMITED  # the stale snapshot answers; a refresh starts behind it
    assert read.wait(10)
    monkeypatch.setattr(budget_services, "budget_rules", real_rules)
    monkeypatch.setattr(budget_services, "RULES_REFRESH_SECONDS", 3600.0)
    budget_create(actor=SYSTEM, scope="user", subject_id=ALICE, requests_per_minute=1)
    fresh_window()
    assert _admit().limited  # reloaded with the new rule

    release.set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and budget_services._refreshing.is_set():
        time.sleep(0.01)
    assert not budget_services._refreshing.is_set()
    with pytest.raises(RateLimitedError):
        _admit()  # still the new rule, not the refresh's older reading


@pytest.mark.parametrize(
    ("period", "now", "start", "end"),
    [
        ("day", dt.datetime(2026, 12, 31, 23, 0, tzinfo=dt.UTC), dt.date(2026, 12, 31),
         dt.datetime(2027, 1, 1, tzinfo=dt.UTC)),
        ("week", dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC), dt.date(2026, 11, 23),
         dt.datetime(2026, 11, 30, tzinfo=dt.UTC)),
        ("month", dt.datetime(2026, 12, 15, tzinfo=dt.UTC), dt.date(2026, 12, 1),
         dt.datetime(2027, 1, 1, tzinfo=dt.UTC)),
    ],
)  # fmt: skip
def test_money_periods_are_utc_calendar_periods(period, now, start, end):
    assert budget_services._period(period, now) == (start, end)
