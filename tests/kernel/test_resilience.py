"""The kernel's resilience mechanisms, keyed by plain names: breaker (in process and in the
real Redis), bulkhead, retries, latency statistics, and the guard composing them."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import pytest_asyncio
import redis

from lumina.kernel.resilience import (
    Bulkhead,
    BulkheadFullError,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    Guard,
    LatencyStats,
    RetryPolicy,
    StreamEmptyError,
    Transition,
)

REDIS_URL = "redis://127.0.0.1:6379/0"


class Failure(Exception):
    """A remote failure, as an owner's errors describe themselves to the mechanisms."""

    def __init__(self, code: str = "down", *, retryable: bool = True, retry_after=None) -> None:
        super().__init__(code)
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after


class BadInput(Exception):
    code = "bad_input"


def counts(error: BaseException) -> bool:
    return isinstance(error, Failure)


@pytest.fixture
def redis_prefix():
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"test:circuit:{uuid.uuid4().hex}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest_asyncio.fixture(params=["local", "redis"])
async def breakers(request, redis_prefix):
    """Makes breakers sharing one store: the real Redis under one prefix, or none."""
    url = REDIS_URL if request.param == "redis" else None
    made: list[CircuitBreaker] = []

    def make(**options) -> CircuitBreaker:
        options.setdefault("failures", 3)
        options.setdefault("cooldown", 0.2)
        breaker = CircuitBreaker(
            name="test", redis_url=url, prefix=redis_prefix, counts=counts, **options
        )
        made.append(breaker)
        return breaker

    make.shared = url is not None
    yield make
    for breaker in made:
        await breaker.aclose()


# -- circuit breaker: the state machine, locally and through Redis ----------------------


@pytest.mark.asyncio
async def test_breaker_opens_after_n_consecutive_failures(breakers):
    transitions: list[Transition] = []
    breaker = breakers(failures=3, on_transition=transitions.append)

    for _ in range(2):
        assert await breaker.allow("svc")
        await breaker.record_failure("svc", Failure())
    assert await breaker.allow("svc")
    assert transitions == []
    await breaker.record_failure("svc", Failure("timeout"))

    assert not await breaker.allow("svc")
    assert breaker.state("svc") is CircuitState.OPEN
    assert await breaker.states(["svc"]) == {"svc": CircuitState.OPEN}
    assert transitions == [Transition("svc", True, "3 consecutive failures, the last timeout")]


@pytest.mark.asyncio
async def test_errors_the_owner_does_not_count_never_open_the_breaker(breakers):
    breaker = breakers(failures=2)

    for _ in range(5):
        await breaker.record_failure("svc", BadInput())

    assert await breaker.allow("svc")
    assert breaker.state("svc") is CircuitState.CLOSED


@pytest.mark.asyncio
async def test_a_success_resets_the_consecutive_count(breakers):
    breaker = breakers(failures=3)

    for _ in range(3):
        await breaker.record_failure("svc", Failure())
        await breaker.record_failure("svc", Failure())
        await breaker.record_success("svc")

    assert await breaker.allow("svc")


@pytest.mark.asyncio
async def test_half_open_lets_one_trial_through_and_its_success_closes(breakers):
    transitions: list[Transition] = []
    breaker = breakers(failures=1, cooldown=0.15, on_transition=transitions.append)
    await breaker.record_failure("svc", Failure("bad_gateway"))
    assert not await breaker.allow("svc")

    await asyncio.sleep(0.2)
    assert await breaker.states(["svc"]) == {"svc": CircuitState.HALF_OPEN}  # ready for a trial
    assert await breaker.allow("svc")  # the trial
    assert not await breaker.allow("svc")
    assert not await breaker.allow("svc")
    await breaker.record_success("svc")

    assert all([await breaker.allow("svc") for _ in range(5)])
    assert breaker.state("svc") is CircuitState.CLOSED
    assert [t.opened for t in transitions] == [True, False]
    assert transitions[1].reason == "trial call succeeded"


@pytest.mark.asyncio
async def test_a_failed_trial_opens_the_circuit_again_for_a_whole_cooldown(breakers):
    transitions: list[Transition] = []
    breaker = breakers(failures=2, cooldown=0.15, on_transition=transitions.append)
    await breaker.record_failure("svc", Failure())
    await breaker.record_failure("svc", Failure())
    await asyncio.sleep(0.2)
    assert await breaker.allow("svc")

    await breaker.record_failure("svc", Failure("internal"))

    assert not await breaker.allow("svc")
    await asyncio.sleep(0.1)
    assert not await breaker.allow("svc")  # a fresh cooldown, not the rest of the old one
    await asyncio.sleep(0.1)
    assert await breaker.allow("svc")
    assert [t.reason for t in transitions] == [
        "2 consecutive failures, the last down",
        "trial call failed: internal",
    ]


@pytest.mark.asyncio
async def test_a_trial_that_never_reports_back_stops_blocking_after_its_timeout(breakers):
    breaker = breakers(failures=1, cooldown=0.1, trial_timeout=0.15)
    await breaker.record_failure("svc", Failure())
    await asyncio.sleep(0.12)
    assert await breaker.allow("svc")  # a trial whose caller vanished
    assert not await breaker.allow("svc")

    await asyncio.sleep(0.17)

    assert await breaker.allow("svc")


@pytest.mark.asyncio
async def test_an_uncounted_error_during_the_trial_hands_the_trial_to_the_next_call(breakers):
    breaker = breakers(failures=1, cooldown=0.1)
    await breaker.record_failure("svc", Failure())
    await asyncio.sleep(0.12)
    assert await breaker.allow("svc")

    await breaker.record_failure("svc", BadInput())

    assert await breaker.allow("svc")
    assert breaker.state("svc") is CircuitState.HALF_OPEN


@pytest.mark.asyncio
async def test_circuits_are_per_key(breakers):
    breaker = breakers(failures=1)

    await breaker.record_failure("broken", Failure())

    assert not await breaker.allow("broken")
    assert await breaker.allow("healthy")


@pytest.mark.asyncio
async def test_the_state_hook_sees_every_change(breakers):
    seen: list[tuple[str, CircuitState]] = []
    breaker = breakers(failures=1, cooldown=0.1, on_state=lambda k, s: seen.append((k, s)))

    await breaker.record_failure("svc", Failure())
    await asyncio.sleep(0.12)
    await breaker.allow("svc")
    await breaker.record_success("svc")

    assert [state for _key, state in seen] == [
        CircuitState.OPEN,
        CircuitState.HALF_OPEN,
        CircuitState.CLOSED,
    ]


# -- sharing through the real Redis ----------------------------------------------------


@pytest.mark.asyncio
async def test_an_open_circuit_is_seen_by_every_process_through_redis(redis_prefix):
    here = CircuitBreaker(name="t", redis_url=REDIS_URL, prefix=redis_prefix, failures=2)
    there = CircuitBreaker(name="t", redis_url=REDIS_URL, prefix=redis_prefix, refresh_interval=0.1)
    try:
        assert await there.allow("svc")

        await here.record_failure("svc", Failure())
        await here.record_failure("svc", Failure())

        assert not await here.allow("svc")
        await asyncio.sleep(0.12)  # ``there`` re-reads Redis at most every refresh interval
        assert not await there.allow("svc")
        assert there.state("svc") is CircuitState.OPEN
    finally:
        await here.aclose()
        await there.aclose()


@pytest.mark.asyncio
async def test_failures_from_several_processes_add_up_and_only_the_tipping_one_reports(
    redis_prefix,
):
    here_seen: list[Transition] = []
    there_seen: list[Transition] = []
    options = {"name": "t", "redis_url": REDIS_URL, "prefix": redis_prefix, "failures": 3}
    here = CircuitBreaker(on_transition=here_seen.append, **options)
    there = CircuitBreaker(on_transition=there_seen.append, **options)
    try:
        await here.record_failure("svc", Failure())
        await there.record_failure("svc", Failure())
        await here.record_failure("svc", Failure())
    finally:
        await here.aclose()
        await there.aclose()

    assert [t.opened for t in here_seen] == [True]
    assert there_seen == []


@pytest.mark.asyncio
async def test_only_one_process_wins_the_trial(redis_prefix):
    options = {
        "name": "t", "redis_url": REDIS_URL, "prefix": redis_prefix, "failures": 1,
        "cooldown": 0.1,
    }  # fmt: skip
    here, there = CircuitBreaker(**options), CircuitBreaker(**options)
    try:
        await here.record_failure("svc", Failure())
        assert not await there.allow("svc")
        await asyncio.sleep(0.12)

        wins = [
            await here.allow("svc"),
            await there.allow("svc"),
            await here.allow("svc"),
            await there.allow("svc"),
        ]
    finally:
        await here.aclose()
        await there.aclose()

    assert wins.count(True) == 1


@pytest.mark.asyncio
async def test_without_redis_each_breaker_keeps_its_own_state():
    here = CircuitBreaker(name="t", redis_url=None, failures=1)
    there = CircuitBreaker(name="t", redis_url=None, failures=1)

    await here.record_failure("svc", Failure())

    assert not await here.allow("svc")
    assert await there.allow("svc")
    assert not here.shared


@pytest.mark.asyncio
async def test_a_warm_allow_makes_no_redis_round_trip(redis_prefix, monkeypatch):
    breaker = CircuitBreaker(name="t", redis_url=REDIS_URL, prefix=redis_prefix)
    try:
        assert await breaker.allow("svc")  # the first call reads Redis
        calls = []
        client = breaker._client()[0]
        real = client.execute_command

        async def spy(*args, **kwargs):
            calls.append(args)
            return await real(*args, **kwargs)

        monkeypatch.setattr(client, "execute_command", spy)
        before = [await breaker.allow("other")]  # a cold key does go to Redis
        assert calls  # so the spy does see round trips (else the check below is empty)
        calls.clear()

        assert all([await breaker.allow("svc") for _ in range(1000)])
        await breaker.record_success("svc")
    finally:
        await breaker.aclose()

    assert before == [True]
    assert calls == []


@pytest.mark.asyncio
async def test_concurrent_reads_of_a_stale_state_make_one_round_trip(redis_prefix, monkeypatch):
    # Every call is past the refresh interval: the requests in flight when a view goes
    # stale must not each ask Redis (they act on the view they have meanwhile).
    breaker = CircuitBreaker(name="t", redis_url=REDIS_URL, prefix=redis_prefix, failures=1)
    there = CircuitBreaker(name="t", redis_url=REDIS_URL, prefix=redis_prefix, failures=1)
    breaker.refresh_interval = 0.0
    try:
        assert await breaker.states(["svc"]) == {}  # a view to act on
        await there.record_failure("svc", Failure())
        client = breaker._client()[0]
        real, pipelines = client.pipeline, []

        def spy(*args, **kwargs):
            pipelines.append(args)
            return real(*args, **kwargs)

        monkeypatch.setattr(client, "pipeline", spy)
        seen = await asyncio.gather(*(breaker.states(["svc"]) for _ in range(50)))
        after = await breaker.states(["svc"])
    finally:
        await breaker.aclose()
        await there.aclose()

    assert len(pipelines) == 2  # one for the 50 concurrent reads, one for the last
    assert after == {"svc": CircuitState.OPEN}  # what the single refresh brought back
    assert all(states in ({}, after) for states in seen)


@pytest.mark.asyncio
async def test_an_unreachable_redis_degrades_to_a_local_breaker(redis_prefix):
    breaker = CircuitBreaker(
        name="t", redis_url="redis://127.0.0.1:1/0", prefix=redis_prefix, failures=2
    )

    assert await breaker.allow("svc")
    await breaker.record_failure("svc", Failure())
    await breaker.record_failure("svc", Failure())

    assert not await breaker.allow("svc")


# -- retries ---------------------------------------------------------------------------


class Flaky:
    """Fails with the given errors in turn, then answers "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class Sleeps(list):
    """Records the waits a policy asks for, without waiting (no clock in these tests)."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def attempt_log():
    log: list[tuple[int, str]] = []

    def hook(number, error, _seconds):
        log.append((number, error.code if error else "ok"))

    return log, hook


@pytest.mark.asyncio
async def test_retry_waits_at_least_the_remote_sides_retry_after():
    sleeps = Sleeps()
    policy = RetryPolicy(retries=2, backoff=0.01, max_wait=1.0, sleep=sleeps)
    flaky = Flaky(Failure("slow_down", retry_after=0.3))
    log, hook = attempt_log()

    assert await policy.call(flaky, on_attempt=hook) == "ok"

    assert len(sleeps) == 1
    assert sleeps[0] >= 0.3
    assert log == [(1, "slow_down"), (2, "ok")]


@pytest.mark.asyncio
async def test_a_retry_after_longer_than_the_cap_moves_on_instead_of_waiting():
    sleeps = Sleeps()
    policy = RetryPolicy(retries=2, backoff=0.01, max_wait=0.5, sleep=sleeps)
    flaky = Flaky(Failure("come_back_later", retry_after=30))

    with pytest.raises(Failure) as caught:
        await policy.call(flaky)

    assert caught.value.retry_after == 30
    assert flaky.calls == 1
    assert sleeps == []


@pytest.mark.asyncio
async def test_non_retryable_errors_are_not_retried():
    sleeps = Sleeps()
    policy = RetryPolicy(retries=3, backoff=0.01, sleep=sleeps)
    flaky = Flaky(Failure("invalid", retryable=False))
    log, hook = attempt_log()

    with pytest.raises(Failure):
        await policy.call(flaky, on_attempt=hook)

    assert flaky.calls == 1
    assert log == [(1, "invalid")]
    assert sleeps == []


@pytest.mark.asyncio
async def test_retries_back_off_exponentially_then_raise_the_last_error():
    sleeps = Sleeps()
    policy = RetryPolicy(retries=2, backoff=0.05, max_wait=1.0, sleep=sleeps)
    flaky = Flaky(Failure("e1"), Failure("e2"), Failure("e3"), Failure("e4"))
    log, hook = attempt_log()

    with pytest.raises(Failure) as caught:
        await policy.call(flaky, on_attempt=hook)

    assert caught.value.code == "e3"  # the third attempt's error: 1 try + 2 retries
    assert flaky.calls == 3
    assert [n for n, _code in log] == [1, 2, 3]
    # backoff × 2^(n-1) plus up to ``backoff`` of jitter: 0.05–0.10, then 0.10–0.15.
    assert len(sleeps) == 2
    assert 0.05 <= sleeps[0] <= 0.10
    assert 0.10 <= sleeps[1] <= 0.15


@pytest.mark.asyncio
async def test_a_veto_stops_the_retries():
    policy = RetryPolicy(retries=3, backoff=0.01, sleep=Sleeps())
    flaky = Flaky(Failure(), Failure(), Failure())

    with pytest.raises(Failure):
        await policy.call(flaky, may_retry=lambda _error: flaky.calls < 2)

    assert flaky.calls == 2


@pytest.mark.asyncio
async def test_a_stream_is_retried_until_its_first_item_and_never_after():
    policy = RetryPolicy(retries=2, backoff=0.01, sleep=Sleeps())
    opened = []

    def factory():
        opened.append(1)

        async def items():
            if len(opened) == 1:
                raise Failure("timeout")
            yield "first"
            yield "second"
            raise Failure("cut", retryable=False)

        return items()

    log, hook = attempt_log()
    rest, first = await policy.open_stream(factory, on_attempt=hook)

    assert first == "first"
    assert await anext(rest) == "second"
    with pytest.raises(Failure, match="cut"):
        await anext(rest)
    assert len(opened) == 2
    assert log == [(1, "timeout"), (2, "ok")]


@pytest.mark.asyncio
async def test_an_empty_stream_is_a_retryable_error_of_the_owners_choice():
    policy = RetryPolicy(retries=1, backoff=0.01, sleep=Sleeps())

    async def nothing():
        return
        yield  # an async generator that yields nothing

    with pytest.raises(StreamEmptyError):
        await policy.open_stream(nothing)
    with pytest.raises(Failure, match="empty"):
        await policy.open_stream(nothing, on_empty=lambda: Failure("empty"))


# -- bulkhead ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_bulkhead_caps_concurrent_calls_per_key():
    bulkhead = Bulkhead(wait=2.0)
    running = peak = 0

    async def call():
        nonlocal running, peak
        async with bulkhead.slot("narrow", 2):
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.02)
            running -= 1

    await asyncio.gather(*(call() for _ in range(6)))

    assert peak == 2
    assert bulkhead.in_flight("narrow") == 0


@pytest.mark.asyncio
async def test_a_full_bulkhead_refuses_after_its_wait_and_other_keys_are_unaffected():
    bulkhead = Bulkhead(wait=0.05)
    held = await bulkhead.acquire("tiny", 1)

    with pytest.raises(BulkheadFullError) as caught:
        await bulkhead.acquire("tiny", 1)
    async with bulkhead.slot("other", 1):  # another key's compartment is unaffected
        pass
    held.release()
    async with bulkhead.slot("tiny", 1):
        pass

    assert (caught.value.key, caught.value.limit, caught.value.wait) == ("tiny", 1, 0.05)


@pytest.mark.asyncio
async def test_a_waiting_call_gets_the_slot_when_it_frees_in_time():
    bulkhead = Bulkhead(wait=5.0)
    held = await bulkhead.acquire("one", 1)
    asyncio.get_running_loop().call_later(0.02, held.release)

    async with bulkhead.slot("one", 1):
        assert bulkhead.in_flight("one") == 1


# -- latency statistics ---------------------------------------------------------------


def test_latency_stats_keep_ewmas_and_an_error_rate():
    stats = LatencyStats(alpha=0.5)

    stats.record("svc", 100, ttft_ms=40)
    stats.record("svc", 300, ttft_ms=20)
    stats.record("svc", None, ok=False)  # a failure moves only the error rate

    entry = stats.get("svc")
    assert (entry.latency, entry.ttft, entry.samples) == (200, 30, 3)
    assert stats.error_rate("svc") == pytest.approx(0.5)
    assert stats.latency_ms("unknown") is None


def test_probe_latencies_seed_only_keys_not_yet_measured():
    stats = LatencyStats(alpha=0.5)
    stats.record("measured", 500)

    stats.seed("measured", 50, ttft_ms=10)
    stats.seed("probed", 80, ttft_ms=20)

    assert stats.latency_ms("measured") == 500
    assert stats.ttft_ms("measured") == 10  # nothing measured it yet
    assert (stats.latency_ms("probed"), stats.ttft_ms("probed")) == (80, 20)


# -- the guard: everything together ---------------------------------------------------------


def guard_for(**breaker_options) -> Guard:
    breaker_options.setdefault("failures", 2)
    breaker_options.setdefault("cooldown", 60)
    return Guard(
        breaker=CircuitBreaker(name="t", redis_url=None, counts=counts, **breaker_options),
        bulkhead=Bulkhead(wait=0.05),
        retry=RetryPolicy(retries=2, backoff=0.01, sleep=Sleeps()),
        stats=LatencyStats(),
    )


@pytest.mark.asyncio
async def test_failed_attempts_open_the_circuit_and_stop_the_retries():
    guard = guard_for(failures=2)
    flaky = Flaky(*(Failure() for _ in range(5)))
    log, hook = attempt_log()

    with pytest.raises(Failure):
        await guard.call("svc", flaky, limit=4, on_attempt=hook)
    with pytest.raises(CircuitOpenError):
        await guard.call("svc", flaky, limit=4, on_attempt=hook)

    assert flaky.calls == 2  # the second failure opened the circuit: no third attempt
    assert len(log) == 2  # the refusal called nothing, so it is no attempt
    assert guard.stats.error_rate("svc") > 0


@pytest.mark.asyncio
async def test_a_successful_call_records_its_latency_and_frees_its_slot():
    guard = guard_for()

    async def answer():
        await asyncio.sleep(0.01)
        return "ok"

    assert await guard.call("svc", answer, limit=1) == "ok"

    assert guard.stats.latency_ms("svc") > 0
    assert guard.bulkhead.in_flight("svc") == 0


@pytest.mark.asyncio
async def test_uncounted_errors_through_the_guard_neither_retry_nor_open_the_circuit():
    guard = guard_for(failures=1)
    flaky = Flaky(BadInput(), BadInput())

    for _ in range(2):
        with pytest.raises(BadInput):
            await guard.call("svc", flaky, limit=4)

    assert flaky.calls == 2
    assert await guard.breaker.allow("svc")
    assert guard.stats.get("svc") is None


@pytest.mark.asyncio
async def test_keys_of_one_compartment_share_its_slots():
    guard = guard_for()
    release = asyncio.Event()

    async def hold():
        await release.wait()
        return "held"

    first = asyncio.create_task(guard.call("model-a", hold, limit=1, compartment="provider"))
    await asyncio.sleep(0)  # let it take the compartment's one slot
    with pytest.raises(BulkheadFullError):
        await guard.call("model-b", hold, limit=1, compartment="provider")
    release.set()

    assert await first == "held"


@pytest.mark.asyncio
async def test_a_guarded_stream_holds_its_slot_until_it_ends_and_records_ttft():
    guard = guard_for()

    async def items():
        await asyncio.sleep(0.01)
        yield "a"
        await asyncio.sleep(0.01)
        yield "b"

    rest, first = await guard.open_stream("svc", items, limit=1)
    assert first == "a"
    with pytest.raises(BulkheadFullError):
        await guard.open_stream("svc", items, limit=1)  # the one slot is the open stream's
    assert [item async for item in rest] == ["b"]

    assert guard.bulkhead.in_flight("svc") == 0
    entry = guard.stats.get("svc")
    assert 0 < entry.ttft < entry.latency


@pytest.mark.asyncio
async def test_closing_a_stream_before_reading_it_gives_the_slot_back():
    guard = guard_for()

    async def items():
        yield "a"
        yield "b"

    rest, _first = await guard.open_stream("svc", items, limit=1)
    await rest.aclose()

    assert guard.bulkhead.in_flight("svc") == 0
    assert guard.stats.latency_ms("svc") is None  # the consumer left: no verdict


@pytest.mark.asyncio
async def test_a_stream_cut_after_the_first_item_counts_against_the_key():
    guard = guard_for(failures=1)

    async def items():
        yield "a"
        raise Failure("cut")

    rest, _first = await guard.open_stream("svc", items, limit=1)
    with pytest.raises(Failure):
        await anext(rest)

    assert guard.breaker.state("svc") is CircuitState.OPEN
    assert guard.bulkhead.in_flight("svc") == 0
