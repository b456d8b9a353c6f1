"""Providers' use of the kernel's resilience: what counts against a deployment, what is
retried, the circuit events and gauge, and the errors the completion path sees.

The mechanisms themselves (breaker in process and in Redis, bulkhead, retries, guard)
are tested with plain keys in ``tests/kernel/test_resilience.py``.
"""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from lumina.kernel.models import OutboxEvent
from lumina.kernel.resilience import Bulkhead, Guard, LatencyStats
from lumina.providers import resilience
from lumina.providers.adapters.base import UpstreamError, UpstreamTimeout
from lumina.providers.events.routing import CircuitClosed, CircuitOpened
from lumina.providers.resilience import (
    CircuitOpenError,
    CircuitState,
    ProviderBusyError,
    attempt_calls,
    attempt_stream,
    counts_against_provider,
    provider_breaker,
    provider_retry_policy,
    wait_for_published_events,
)
from tests.providers.routing_support import deployment, provider


def server_error(status: int = 503, **kwargs) -> UpstreamError:
    return UpstreamError("upstream failed", status=status, retryable=True, **kwargs)


def bad_request(status: int = 400) -> UpstreamError:
    return UpstreamError("bad request", status=status, code="invalid_request")


class Sleeps(list):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


class Flaky:
    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def guard_for(*, failures: int = 2, wait: float = 0.05, notify=None, **breaker) -> Guard:
    return Guard(
        breaker=provider_breaker(redis_url=None, failures=failures, notify=notify, **breaker),
        bulkhead=Bulkhead(wait=wait),
        retry=provider_retry_policy(retries=2, backoff=0.01, sleep=Sleeps()),
        stats=LatencyStats(),
    )


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


@pytest.mark.asyncio
async def test_failures_open_the_deployments_circuit_and_it_is_refused_as_circuit_open():
    guard = guard_for(failures=2)
    d = deployment()
    flaky = Flaky(*(server_error() for _ in range(5)))
    attempts = []

    with pytest.raises(UpstreamError) as first:
        await attempt_calls(d, flaky, with_guard=guard, on_attempt=lambda *a: attempts.append(a))
    with pytest.raises(CircuitOpenError) as refused:
        await attempt_calls(d, flaky, with_guard=guard, on_attempt=lambda *a: attempts.append(a))

    assert first.value.status == 503
    assert flaky.calls == 2  # the second failure opened the circuit: no third attempt
    assert refused.value.code == "circuit_open"
    assert [(a[0].id, a[1]) for a in attempts] == [(d.id, 1), (d.id, 2)]  # no refusal logged
    assert guard.breaker.state(d.id) is CircuitState.OPEN


@pytest.mark.asyncio
async def test_client_errors_neither_retry_nor_open_the_circuit():
    guard = guard_for(failures=1)
    d = deployment()
    flaky = Flaky(bad_request(), bad_request())

    for _ in range(2):
        with pytest.raises(UpstreamError) as caught:
            await attempt_calls(d, flaky, with_guard=guard)
        assert caught.value.status == 400

    assert flaky.calls == 2
    assert await guard.breaker.allow(d.id)


@pytest.mark.asyncio
async def test_a_retry_waits_at_least_the_providers_retry_after():
    guard = guard_for()
    flaky = Flaky(UpstreamError("slow down", status=429, retryable=True, retry_after=0.3))

    assert await attempt_calls(deployment(), flaky, with_guard=guard) == "ok"

    assert flaky.calls == 2
    assert guard.retry.sleep[0] >= 0.3


@pytest.mark.asyncio
async def test_a_providers_deployments_share_its_bulkhead_and_a_full_one_is_provider_busy():
    guard = guard_for()
    narrow = provider("narrow", max_concurrency=1)
    first, second = deployment("a", on=narrow), deployment("b", on=narrow)
    release = asyncio.Event()

    async def hold():
        await release.wait()
        return "held"

    held = asyncio.create_task(attempt_calls(first, hold, with_guard=guard))
    await asyncio.sleep(0)
    with pytest.raises(ProviderBusyError) as busy:
        await attempt_calls(second, hold, with_guard=guard)
    other = deployment("c", on=provider("other", max_concurrency=1))
    assert await attempt_calls(other, Flaky(), with_guard=guard) == "ok"  # unaffected
    release.set()

    assert await held == "held"
    assert busy.value.code == "provider_busy"
    assert "narrow" in busy.value.message


@pytest.mark.asyncio
async def test_an_empty_provider_stream_is_a_retryable_stream_cut():
    guard = guard_for()
    opened = []

    def factory():
        opened.append(1)

        async def chunks():
            if len(opened) == 1:
                return
            yield {"choices": []}

        return chunks()

    rest, first = await attempt_stream(deployment(), factory, with_guard=guard)
    await rest.aclose()

    assert first == {"choices": []}
    assert len(opened) == 2  # the empty one was retried


@pytest.mark.asyncio
async def test_the_gauge_shows_the_circuit_state_with_provider_labels():
    guard = guard_for(failures=1, cooldown=0.1)
    d = deployment("gauge-model", on="gauge-provider")
    labels = {"deployment": str(d.id), "provider": "gauge-provider", "model": "gauge-model"}

    with pytest.raises(UpstreamError):
        await attempt_calls(d, Flaky(server_error(), server_error(), server_error()),
                            with_guard=guard)  # fmt: skip
    assert REGISTRY.get_sample_value("lumina_provider_circuit_state", labels) == 2
    await asyncio.sleep(0.12)
    assert await attempt_calls(d, Flaky(), with_guard=guard) == "ok"  # the trial succeeds

    assert REGISTRY.get_sample_value("lumina_provider_circuit_state", labels) == 0


@pytest.mark.django_db(transaction=True)
def test_transitions_publish_circuit_events_to_the_outbox():
    guard = guard_for(failures=1, cooldown=0.05, notify=resilience.publish_in_background)
    d = deployment("gpt-4o-mini", on="flaky-provider")

    async def scenario():
        with pytest.raises(UpstreamError):
            await attempt_calls(d, Flaky(server_error(502), server_error(502)), with_guard=guard)
        await asyncio.sleep(0.06)
        assert await attempt_calls(d, Flaky(), with_guard=guard) == "ok"

    asyncio.run(scenario())
    wait_for_published_events()

    rows = list(
        OutboxEvent.objects.filter(name__startswith="providers.Circuit")
        .order_by("created_at")
        .values_list("name", "payload")
    )
    assert [name for name, _payload in rows] == [CircuitOpened.name, CircuitClosed.name]
    assert rows[0][1] == {
        "deployment_id": str(d.id),
        "provider_name": "flaky-provider",
        "model": "gpt-4o-mini",
        "reason": "1 consecutive failures, the last upstream_error (HTTP 502)",
    }
    assert rows[1][1]["reason"] == "trial call succeeded"


def test_the_process_breaker_uses_the_shared_redis_keys_of_before():
    breaker = provider_breaker(redis_url=None, notify=None)
    assert breaker.prefix == "lumina:circuit"
    assert breaker.name == "providers"
