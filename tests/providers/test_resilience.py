"""Circuit breakers (local and through real Redis), retries, bulkheads and latency stats."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis
from prometheus_client import REGISTRY

from lumina.kernel.models import OutboxEvent
from lumina.providers.adapters.base import UpstreamError, UpstreamTimeout
from lumina.providers.events.routing import CircuitClosed, CircuitOpened
from lumina.providers.resilience import (
    Bulkhead,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    LatencyStats,
    ProviderBusyError,
    Resilience,
    RetryPolicy,
    counts_against_provider,
    wait_for_published_events,
)
from tests.conftest import reachable
from tests.providers.routing_support import deployment, provider

REDIS_URL = "redis://127.0.0.1:6379/0"
needs_redis = pytest.mark.skipif(not reachable("127.0.0.1", 6379), reason="no Redis")


def server_error(status: int = 503, **kwargs) -> UpstreamError:
    return UpstreamError("upstream failed", status=status, retryable=True, **kwargs)


def bad_request(status: int = 400) -> UpstreamError:
    return UpstreamError("bad request", status=status, code="invalid_request")


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


@pytest.fixture(params=["local", pytest.param("redis", marks=needs_redis)])
def breakers(request, redis_prefix):
    """Makes breakers sharing one store: one Redis prefix, or none (each its own)."""
    url = REDIS_URL if request.param == "redis" else None
    made: list[CircuitBreaker] = []

    def make(**options) -> CircuitBreaker:
        options.setdefault("failures", 3)
        options.setdefault("cooldown", 0.2)
        options.setdefault("notify", None)
        breaker = CircuitBreaker(redis_url=url, prefix=redis_prefix, **options)
        made.append(breaker)
        return breaker

    make.shared = url is not None
    yield make
    for breaker in made:
        breaker.close()


# -- which failures count --------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "counts"),
    [
        (server_error(500), True),
        (server_error(503), True),
        (UpstreamError("slow down", status=429, retryable=True), True),
        (UpstreamError("timeout", status=408), True),
        (UpstreamTimeout(), True),
        (UpstreamError("connection refused", retryable=True, code="upstream_unreachable"), True),
        (ConnectionResetError(), True),
        (bad_request(400), False),
        (bad_request(401), False),
        (bad_request(404), False),
        (bad_request(422), False),
        (ProviderBusyError(provider("p"), 0.5), False),
        (CircuitOpenError(deployment()), False),
        (ValueError("a bug"), False),
    ],
)
def test_only_failures_that_speak_about_the_provider_count(error, counts):
    assert counts_against_provider(error) is counts


# -- circuit breaker: the state machine, locally and through Redis ----------------------


def test_breaker_opens_after_n_consecutive_provider_failures(breakers):
    events = []
    breaker = breakers(failures=3, notify=events.append)
    d = deployment()

    for _ in range(2):
        assert breaker.allow(d)
        breaker.record_failure(d, server_error())
    assert breaker.allow(d)
    assert events == []
    breaker.record_failure(d, UpstreamTimeout())

    assert not breaker.allow(d)
    assert breaker.state(d.id) is CircuitState.OPEN
    assert breaker.states([d]) == {d.id: CircuitState.OPEN}
    assert [type(e) for e in events] == [CircuitOpened]
    assert events[0].deployment_id == d.id
    assert events[0].reason == "3 consecutive failures, the last upstream_timeout"


def test_client_errors_never_open_the_breaker(breakers):
    breaker = breakers(failures=2)
    d = deployment()

    for status in (400, 401, 404, 413, 422, 400, 400):
        breaker.record_failure(d, bad_request(status))

    assert breaker.allow(d)
    assert breaker.state(d.id) is CircuitState.CLOSED


def test_a_success_resets_the_consecutive_count(breakers):
    breaker = breakers(failures=3)
    d = deployment()

    for _ in range(3):
        breaker.record_failure(d, server_error())
        breaker.record_failure(d, server_error())
        breaker.record_success(d)

    assert breaker.allow(d)


def test_half_open_lets_one_trial_through_and_its_success_closes(breakers):
    events = []
    breaker = breakers(failures=1, cooldown=0.15, notify=events.append)
    d = deployment()
    breaker.record_failure(d, server_error(502))
    assert not breaker.allow(d)

    time.sleep(0.2)
    assert breaker.states([d]) == {d.id: CircuitState.HALF_OPEN}  # ready for a trial
    assert breaker.allow(d)  # the trial
    assert not breaker.allow(d)
    assert not breaker.allow(d)
    breaker.record_success(d)

    assert all(breaker.allow(d) for _ in range(5))
    assert breaker.state(d.id) is CircuitState.CLOSED
    assert [type(e) for e in events] == [CircuitOpened, CircuitClosed]
    assert events[1].reason == "trial call succeeded"


def test_a_failed_trial_opens_the_circuit_again_for_a_whole_cooldown(breakers):
    events = []
    breaker = breakers(failures=2, cooldown=0.15, notify=events.append)
    d = deployment()
    breaker.record_failure(d, server_error())
    breaker.record_failure(d, server_error())
    time.sleep(0.2)
    assert breaker.allow(d)

    breaker.record_failure(d, server_error(500))

    assert not breaker.allow(d)
    time.sleep(0.1)
    assert not breaker.allow(d)  # a fresh cooldown, not the rest of the old one
    time.sleep(0.1)
    assert breaker.allow(d)
    assert [e.reason for e in events] == [
        "2 consecutive failures, the last upstream_error (HTTP 503)",
        "trial call failed: upstream_error (HTTP 500)",
    ]


def test_a_trial_that_never_reports_back_stops_blocking_after_its_timeout(breakers):
    breaker = breakers(failures=1, cooldown=0.1, trial_timeout=0.15)
    d = deployment()
    breaker.record_failure(d, server_error())
    time.sleep(0.12)
    assert breaker.allow(d)  # a trial whose caller vanished
    assert not breaker.allow(d)

    time.sleep(0.17)

    assert breaker.allow(d)


def test_a_client_error_during_the_trial_hands_the_trial_to_the_next_call(breakers):
    breaker = breakers(failures=1, cooldown=0.1)
    d = deployment()
    breaker.record_failure(d, server_error())
    time.sleep(0.12)
    assert breaker.allow(d)

    breaker.record_failure(d, bad_request())

    assert breaker.allow(d)
    assert breaker.state(d.id) is CircuitState.HALF_OPEN


def test_circuits_are_per_deployment(breakers):
    breaker = breakers(failures=1)
    broken, healthy = deployment(), deployment()

    breaker.record_failure(broken, server_error())

    assert not breaker.allow(broken)
    assert breaker.allow(healthy)


def test_the_gauge_shows_the_circuit_state(breakers):
    breaker = breakers(failures=1, cooldown=0.1)
    d = deployment("gauge-model", on="gauge-provider")
    labels = {"deployment": str(d.id), "provider": "gauge-provider", "model": "gauge-model"}

    breaker.record_failure(d, server_error())
    assert REGISTRY.get_sample_value("lumina_provider_circuit_state", labels) == 2
    time.sleep(0.12)
    breaker.allow(d)
    assert REGISTRY.get_sample_value("lumina_provider_circuit_state", labels) == 1
    breaker.record_success(d)
    assert REGISTRY.get_sample_value("lumina_provider_circuit_state", labels) == 0


# -- sharing ---------------------------------------------------------------------------


@needs_redis
def test_an_open_circuit_is_seen_by_every_process_through_redis(redis_prefix):
    here = CircuitBreaker(redis_url=REDIS_URL, prefix=redis_prefix, failures=2, notify=None)
    there = CircuitBreaker(
        redis_url=REDIS_URL, prefix=redis_prefix, refresh_interval=0.1, notify=None
    )
    d = deployment()
    assert there.allow(d)

    here.record_failure(d, server_error())
    here.record_failure(d, server_error())

    assert not here.allow(d)
    time.sleep(0.12)  # ``there`` re-reads Redis at most every refresh interval
    assert not there.allow(d)
    assert there.state(d.id) is CircuitState.OPEN


@needs_redis
def test_failures_from_several_processes_add_up_and_only_the_tipping_one_publishes(
    redis_prefix,
):
    here_events, there_events = [], []
    here = CircuitBreaker(
        redis_url=REDIS_URL, prefix=redis_prefix, failures=3, notify=here_events.append
    )
    there = CircuitBreaker(
        redis_url=REDIS_URL, prefix=redis_prefix, failures=3, notify=there_events.append
    )
    d = deployment()

    here.record_failure(d, server_error())
    there.record_failure(d, server_error())
    here.record_failure(d, server_error())

    assert [type(e) for e in here_events] == [CircuitOpened]
    assert there_events == []


@needs_redis
def test_only_one_process_wins_the_trial(redis_prefix):
    here = CircuitBreaker(
        redis_url=REDIS_URL, prefix=redis_prefix, failures=1, cooldown=0.1, notify=None
    )
    there = CircuitBreaker(
        redis_url=REDIS_URL, prefix=redis_prefix, failures=1, cooldown=0.1, notify=None
    )
    d = deployment()
    here.record_failure(d, server_error())
    assert not there.allow(d)
    time.sleep(0.12)

    assert [here.allow(d), there.allow(d), here.allow(d), there.allow(d)].count(True) == 1


def test_without_redis_each_breaker_keeps_its_own_state():
    here = CircuitBreaker(redis_url=None, failures=1, notify=None)
    there = CircuitBreaker(redis_url=None, failures=1, notify=None)
    d = deployment()

    here.record_failure(d, server_error())

    assert not here.allow(d)
    assert there.allow(d)
    assert not here.shared


@needs_redis
def test_a_warm_allow_makes_no_redis_round_trip(redis_prefix, monkeypatch):
    breaker = CircuitBreaker(redis_url=REDIS_URL, prefix=redis_prefix, notify=None)
    d = deployment()
    assert breaker.allow(d)  # the first call reads Redis
    calls = []
    client = breaker._sync_client()
    real = client.execute_command
    monkeypatch.setattr(client, "execute_command", lambda *a, **k: calls.append(a) or real(*a, **k))

    assert all(breaker.allow(d) for _ in range(1000))
    breaker.record_success(d)

    assert calls == []


def test_an_unreachable_redis_degrades_to_a_local_breaker(redis_prefix):
    breaker = CircuitBreaker(
        redis_url="redis://127.0.0.1:1/0", prefix=redis_prefix, failures=2, notify=None
    )
    d = deployment()

    assert breaker.allow(d)
    breaker.record_failure(d, server_error())
    breaker.record_failure(d, server_error())

    assert not breaker.allow(d)


@pytest.mark.asyncio
@needs_redis
async def test_async_breaker_shares_state_with_sync_callers(redis_prefix):
    sync_side = CircuitBreaker(redis_url=REDIS_URL, prefix=redis_prefix, failures=2, notify=None)
    async_side = CircuitBreaker(
        redis_url=REDIS_URL, prefix=redis_prefix, failures=2, cooldown=0.1, notify=None
    )
    d = deployment()
    try:
        assert await async_side.allow_async(d)
        await async_side.record_failure_async(d, server_error())
        await async_side.record_failure_async(d, server_error())

        assert not await async_side.allow_async(d)
        assert not sync_side.allow(d)
        assert await async_side.states_async([d]) == {d.id: CircuitState.OPEN}
        await asyncio.sleep(0.12)
        assert await async_side.allow_async(d)
        await async_side.record_success_async(d)
        assert sync_side._views.pop(d.id)  # forget the cached view: read Redis again
        assert sync_side.allow(d)
        assert sync_side.state(d.id) is CircuitState.CLOSED
    finally:
        await async_side.aclose()
        sync_side.close()


@pytest.mark.django_db(transaction=True)
def test_transitions_publish_circuit_events_to_the_outbox():
    breaker = CircuitBreaker(redis_url=None, failures=1, cooldown=0.05)
    d = deployment("gpt-4o-mini", on="flaky-provider")

    breaker.record_failure(d, server_error(502))
    time.sleep(0.06)
    assert breaker.allow(d)
    breaker.record_success(d)
    wait_for_published_events()

    rows = list(
        OutboxEvent.objects.filter(name__startswith="providers.Circuit")
        .order_by("created_at")
        .values_list("name", "payload")
    )
    assert [name for name, _payload in rows] == [
        "providers.CircuitOpened",
        "providers.CircuitClosed",
    ]
    assert rows[0][1] == {
        "deployment_id": str(d.id),
        "provider_name": "flaky-provider",
        "model": "gpt-4o-mini",
        "reason": "1 consecutive failures, the last upstream_error (HTTP 502)",
    }


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


def attempt_log():
    log = []

    def hook(deployment, number, error, seconds):
        log.append((deployment.id, number, error.code if error else "ok", seconds))

    return log, hook


@pytest.mark.asyncio
async def test_retry_waits_at_least_the_providers_retry_after():
    policy = RetryPolicy(retries=2, backoff=0.01, max_wait=1.0)
    flaky = Flaky(UpstreamError("slow down", status=429, retryable=True, retry_after=0.3))
    log, hook = attempt_log()
    d = deployment()

    started = time.perf_counter()
    assert await policy.call(flaky, deployment=d, on_attempt=hook) == "ok"

    assert time.perf_counter() - started >= 0.3
    assert [(n, code) for _id, n, code, _s in log] == [(1, "upstream_error"), (2, "ok")]
    assert all(entry[0] == d.id for entry in log)


@pytest.mark.asyncio
async def test_a_retry_after_longer_than_the_cap_moves_on_instead_of_waiting():
    policy = RetryPolicy(retries=2, backoff=0.01, max_wait=0.5)
    flaky = Flaky(UpstreamError("come back later", status=429, retryable=True, retry_after=30))

    started = time.perf_counter()
    with pytest.raises(UpstreamError) as caught:
        await policy.call(flaky, deployment=deployment())

    assert caught.value.retry_after == 30
    assert flaky.calls == 1
    assert time.perf_counter() - started < 0.2


@pytest.mark.asyncio
async def test_non_retryable_errors_are_not_retried():
    policy = RetryPolicy(retries=3, backoff=0.01)
    flaky = Flaky(bad_request(422))
    log, hook = attempt_log()

    with pytest.raises(UpstreamError):
        await policy.call(flaky, deployment=deployment(), on_attempt=hook)

    assert flaky.calls == 1
    assert len(log) == 1


@pytest.mark.asyncio
async def test_retries_back_off_exponentially_then_raise_the_last_error():
    policy = RetryPolicy(retries=2, backoff=0.05, max_wait=1.0)
    flaky = Flaky(server_error(500), server_error(502), server_error(503), server_error(504))
    log, hook = attempt_log()

    started = time.perf_counter()
    with pytest.raises(UpstreamError) as caught:
        await policy.call(flaky, deployment=deployment(), on_attempt=hook)

    assert caught.value.status == 503  # the third attempt's error: 1 try + 2 retries
    assert flaky.calls == 3
    assert [n for _id, n, _code, _s in log] == [1, 2, 3]
    assert time.perf_counter() - started >= 0.05 + 0.10


@pytest.mark.asyncio
async def test_a_stream_is_retried_until_its_first_chunk_and_never_after():
    policy = RetryPolicy(retries=2, backoff=0.01)
    opened = []

    def factory():
        opened.append(1)

        async def chunks():
            if len(opened) == 1:
                raise UpstreamTimeout()
            yield "first"
            yield "second"
            raise UpstreamError("cut", code="upstream_stream_cut")

        return chunks()

    log, hook = attempt_log()
    rest, first = await policy.open_stream(factory, deployment=deployment(), on_attempt=hook)

    assert first == "first"
    assert await anext(rest) == "second"
    with pytest.raises(UpstreamError, match="cut"):
        await anext(rest)
    assert len(opened) == 2
    assert [code for _id, _n, code, _s in log] == ["upstream_timeout", "ok"]


# -- bulkhead ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_bulkhead_caps_concurrent_calls_per_provider():
    bulkhead = Bulkhead(wait=2.0)
    p = provider("narrow", max_concurrency=2)
    running = peak = 0

    async def call():
        nonlocal running, peak
        async with bulkhead.slot(p):
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.05)
            running -= 1

    await asyncio.gather(*(call() for _ in range(6)))

    assert peak == 2
    assert bulkhead.in_flight(p) == 0


@pytest.mark.asyncio
async def test_a_full_bulkhead_refuses_after_its_short_wait():
    bulkhead = Bulkhead(wait=0.1)
    p = provider("tiny", max_concurrency=1)
    other = provider("other", max_concurrency=1)
    held = await bulkhead.acquire(p)

    started = time.perf_counter()
    with pytest.raises(ProviderBusyError) as caught:
        await bulkhead.acquire(p)
    waited = time.perf_counter() - started
    async with bulkhead.slot(other):  # another provider's compartment is unaffected
        pass
    held.release()
    async with bulkhead.slot(p):
        pass

    assert 0.09 <= waited < 0.5
    assert caught.value.code == "provider_busy"
    assert caught.value.retryable
    assert "tiny" in caught.value.message


@pytest.mark.asyncio
async def test_a_waiting_call_gets_the_slot_when_it_frees_in_time():
    bulkhead = Bulkhead(wait=1.0)
    p = provider("one", max_concurrency=1)
    held = await bulkhead.acquire(p)
    asyncio.get_running_loop().call_later(0.05, held.release)

    async with bulkhead.slot(p):
        assert bulkhead.in_flight(p) == 1


# -- latency statistics ---------------------------------------------------------------


def test_latency_stats_keep_ewmas_and_an_error_rate():
    stats = LatencyStats(alpha=0.5)
    d = uuid.uuid4()

    stats.record(d, 100, ttft_ms=40)
    stats.record(d, 300, ttft_ms=20)
    stats.record(d, None, ok=False)  # a failure moves only the error rate

    entry = stats.get(d)
    assert (entry.latency, entry.ttft, entry.samples) == (200, 30, 3)
    assert stats.error_rate(d) == pytest.approx(0.5)
    assert stats.latency_ms(uuid.uuid4()) is None


def test_probe_latencies_seed_only_deployments_not_yet_measured():
    stats = LatencyStats(alpha=0.5)
    measured, probed = uuid.uuid4(), uuid.uuid4()
    stats.record(measured, 500)

    stats.seed(measured, 50, ttft_ms=10)
    stats.seed(probed, 80, ttft_ms=20)

    assert stats.latency_ms(measured) == 500
    assert stats.ttft_ms(measured) == 10  # nothing measured it yet
    assert (stats.latency_ms(probed), stats.ttft_ms(probed)) == (80, 20)


# -- everything together ---------------------------------------------------------------


def resilience_for(**breaker_options) -> Resilience:
    breaker_options.setdefault("failures", 2)
    breaker_options.setdefault("cooldown", 60)
    return Resilience(
        breaker=CircuitBreaker(redis_url=None, notify=None, **breaker_options),
        bulkhead=Bulkhead(wait=0.05),
        retry=RetryPolicy(retries=2, backoff=0.01),
        stats=LatencyStats(),
    )


@pytest.mark.asyncio
async def test_failed_attempts_open_the_circuit_and_stop_the_retries():
    guard = resilience_for(failures=2)
    d = deployment()
    flaky = Flaky(*(server_error() for _ in range(5)))
    log, hook = attempt_log()

    with pytest.raises(UpstreamError):
        await guard.call(d, flaky, on_attempt=hook)
    with pytest.raises(CircuitOpenError):
        await guard.call(d, flaky, on_attempt=hook)

    assert flaky.calls == 2  # the second failure opened the circuit: no third attempt
    assert len(log) == 2  # the refusal called no provider, so it is no attempt
    assert guard.stats.error_rate(d.id) > 0


@pytest.mark.asyncio
async def test_a_successful_call_records_its_latency():
    guard = resilience_for()
    d = deployment()

    async def slow():
        await asyncio.sleep(0.02)
        return "ok"

    assert await guard.call(d, slow) == "ok"

    assert guard.stats.latency_ms(d.id) >= 20
    assert guard.bulkhead.in_flight(d.provider) == 0


@pytest.mark.asyncio
async def test_client_errors_through_the_guard_neither_retry_nor_open_the_circuit():
    guard = resilience_for(failures=1)
    d = deployment()
    flaky = Flaky(bad_request(), bad_request())

    for _ in range(2):
        with pytest.raises(UpstreamError):
            await guard.call(d, flaky)

    assert flaky.calls == 2
    assert guard.breaker.allow(d)
    assert guard.stats.get(d.id) is None


@pytest.mark.asyncio
async def test_a_guarded_stream_holds_its_slot_until_it_ends_and_records_ttft():
    guard = resilience_for()
    d = deployment(on=provider("streamer", max_concurrency=1))

    async def chunks():
        await asyncio.sleep(0.02)
        yield "a"
        await asyncio.sleep(0.02)
        yield "b"

    rest, first = await guard.open_stream(d, chunks)
    assert first == "a"
    with pytest.raises(ProviderBusyError):
        await guard.open_stream(d, chunks)  # the one slot is taken by the open stream
    assert [item async for item in rest] == ["b"]

    assert guard.bulkhead.in_flight(d.provider) == 0
    assert guard.stats.ttft_ms(d.id) >= 20
    assert guard.stats.latency_ms(d.id) >= 40


@pytest.mark.asyncio
async def test_closing_a_stream_before_reading_it_gives_the_slot_back():
    guard = resilience_for()
    d = deployment(on=provider("quitter", max_concurrency=1))

    async def chunks():
        yield "a"
        yield "b"

    rest, _first = await guard.open_stream(d, chunks)
    await rest.aclose()

    assert guard.bulkhead.in_flight(d.provider) == 0
    assert guard.stats.latency_ms(d.id) is None  # the consumer left: no verdict


@pytest.mark.asyncio
async def test_a_stream_cut_after_the_first_chunk_counts_against_the_deployment():
    guard = resilience_for(failures=1)
    d = deployment()

    async def chunks():
        yield "a"
        raise UpstreamError("the provider hung up", code="upstream_stream_cut")

    rest, _first = await guard.open_stream(d, chunks)
    with pytest.raises(UpstreamError):
        await anext(rest)

    assert guard.breaker.state(d.id) is CircuitState.OPEN
    assert guard.bulkhead.in_flight(d.provider) == 0
