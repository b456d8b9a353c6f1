"""Faults on the ``/v1`` path: retries, fallback, broken streams, budgets, deletion.

Each test drives a loopback upstream into one fault and checks what the client saw and
what the usage ledger recorded.
"""

from __future__ import annotations

import concurrent.futures
import threading
from decimal import Decimal

import orjson
import pytest
import requests

from lumina.providers.models.usage import Budget
from lumina.providers.services.budgets import budget_cache_invalidate
from lumina.providers.services.usage import usage_flush
from lumina.providers.types import Capability, ProviderKind, UsageStatus
from tests.providers.factories import DeploymentFactory, ProviderFactory
from tests.providers.gateway_support import lumina_token, usage_rows
from tests.security.rbac_support import give_role, make_user

pytestmark = [pytest.mark.django_db(transaction=True)]


def _deployment(upstream, *, provider: str, priority: int = 0, **extra):
    return DeploymentFactory(
        provider=ProviderFactory(
            name=provider,
            kind=ProviderKind.OPENAI_COMPATIBLE.value,
            base_url=upstream.url,
            priority=priority,
            read_timeout=extra.pop("read_timeout", 5.0),
        ),
        name="chat",
        capabilities=[Capability.CHAT, Capability.STREAMING],
        **extra,
    )


@pytest.fixture
def caller(asgi_server):
    user = make_user("faults@example.com")
    give_role(user, "Developer")
    token = lumina_token(user)

    class Caller:
        user_id = user.pk
        url = f"{asgi_server.url}/v1/chat/completions"

        def post(self, body=None, *, stream=False, headers=None, raw=None):
            body = body or {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
            if stream:
                body = {**body, "stream": True}
            return requests.post(
                self.url,
                data=raw if raw is not None else orjson.dumps(body),
                headers={"Authorization": f"Bearer {token}", **(headers or {})},
                stream=stream,
                timeout=30,
            )

    return Caller()


def _events(response) -> list[bytes]:
    return [line for line in response.iter_lines() if line]


def test_upstream_500_is_retried_and_the_retry_answers(caller, openai_upstream):
    _deployment(openai_upstream, provider="flaky")
    openai_upstream.script.fail_next = 1
    response = caller.post()
    assert response.status_code == 200
    assert len(openai_upstream.requests) == 2
    usage_flush()
    [row] = usage_rows()
    assert (row.status, row.attempts) == (UsageStatus.OK, 2)
    assert [a["outcome"] for a in row.attempt_log] == ["retry", "ok"]
    assert row.attempt_log[0]["error_code"] == "upstream_server_error"


def test_upstream_429_retry_after_is_honoured(caller, openai_upstream):
    _deployment(openai_upstream, provider="limited")
    openai_upstream.script.fail_next = 1
    openai_upstream.script.fail_status = 429
    openai_upstream.script.retry_after = "1"
    response = caller.post()
    assert response.status_code == 200
    # Retried at the same provider (no fallback), within the longest retry wait. How long
    # the retry waited is the resilience tests' business, not a wall-clock assert here.
    assert len(openai_upstream.requests) == 2
    usage_flush()
    [row] = usage_rows()
    assert (row.provider_name, row.attempts, row.status) == ("limited", 2, UsageStatus.OK)


def test_fallback_to_the_next_candidate_when_the_first_is_down(
    caller, openai_upstream, anthropic_upstream
):
    down = _deployment(openai_upstream, provider="down", priority=10)
    openai_upstream.script.fail_next = 100
    DeploymentFactory(
        provider=ProviderFactory(
            name="backup", kind=ProviderKind.ANTHROPIC.value, base_url=anthropic_upstream.url
        ),
        name="chat",
        capabilities=[Capability.CHAT, Capability.STREAMING],
    )
    body = {
        "model": "lumina/auto:priority",
        "messages": [{"role": "user", "content": "hi"}],
    }
    response = caller.post(body, stream=True)
    assert response.status_code == 200
    events = _events(response)
    assert events[-1] == b"data: [DONE]"
    assert anthropic_upstream.requests, "the backup provider was not called"
    usage_flush()
    [row] = usage_rows()
    assert row.provider_name == "backup"
    assert down.provider.name != row.provider_name
    # Every call is in the ledger: the retries of the down provider, then the backup.
    calls = [(a["provider"], a["outcome"]) for a in row.attempt_log]
    assert calls[-1] == ("backup", "ok")
    assert {outcome for provider, outcome in calls[:-1] if provider == "down"} <= {"retry", "error"}
    assert len(calls) == row.attempts > 1


def test_upstream_timeout_falls_back(caller, openai_upstream, ollama_upstream):
    _deployment(openai_upstream, provider="slow", priority=10, read_timeout=0.3)
    openai_upstream.script.hang = True
    DeploymentFactory(
        provider=ProviderFactory(
            name="ollama", kind=ProviderKind.OLLAMA.value, base_url=ollama_upstream.url
        ),
        name="chat",
        capabilities=[Capability.CHAT, Capability.STREAMING],
    )
    response = caller.post({"model": "chat", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 200
    usage_flush()
    [row] = usage_rows()
    assert row.provider_name == "ollama"


def test_all_candidates_down_is_a_clear_error_and_is_recorded(caller, openai_upstream):
    _deployment(openai_upstream, provider="only")
    openai_upstream.script.fail_next = 100
    openai_upstream.script.fail_status = 503
    response = caller.post()
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["type"] == "api_error"
    assert "No provider could serve" in error["message"]
    usage_flush()
    [row] = usage_rows()
    assert row.status == UsageStatus.ERROR
    assert row.error_code


def test_stream_cut_mid_way_ends_with_an_error_event_and_no_done(caller, openai_upstream):
    _deployment(openai_upstream, provider="cutter")
    openai_upstream.script.chunks = 6
    openai_upstream.script.cut_after = 3
    response = caller.post(stream=True)
    assert response.status_code == 200
    events = _events(response)
    assert b"data: [DONE]" not in events
    last = orjson.loads(events[-1].removeprefix(b"data: "))
    assert last["error"]["code"] == "upstream_stream_cut"
    usage_flush()
    [row] = usage_rows()
    assert row.status == UsageStatus.CUT
    assert row.estimated  # counted by Lumina: the provider sent no usage
    assert row.output_tokens > 0


def test_malformed_upstream_sse_is_an_in_band_error(caller, openai_upstream):
    _deployment(openai_upstream, provider="garbled")
    openai_upstream.script.chunks = 4
    openai_upstream.script.malformed_after = 2
    events = _events(caller.post(stream=True))
    assert b"data: [DONE]" not in events
    last = orjson.loads(events[-1].removeprefix(b"data: "))
    assert last["error"]["code"] == "upstream_protocol_error"


def test_stream_without_upstream_usage_is_counted_and_marked_estimated(caller, openai_upstream):
    _deployment(openai_upstream, provider="quiet")
    openai_upstream.script.omit_usage = True
    body = {
        "model": "chat",
        "messages": [{"role": "user", "content": "hi"}],
        "stream_options": {"include_usage": True},
    }
    events = _events(caller.post(body, stream=True))
    usage_chunk = orjson.loads(events[-2].removeprefix(b"data: "))
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] > 0
    usage_flush()
    [row] = usage_rows()
    assert row.estimated
    assert row.cost > 0


def test_budget_exhausted_by_two_concurrent_requests_lets_only_one_pass(caller, openai_upstream):
    _deployment(
        openai_upstream, provider="priced", input_price=Decimal(1000), output_price=Decimal(1000)
    )
    # Streams whose bodies end only when both answers are in: a request that finished first
    # would settle its estimate down to its real cost and rightly leave room for the other.
    openai_upstream.script.hold_body = threading.Event()
    # One request is estimated at ~(prompt + 256 output) tokens x $1000/M ~ $0.27.
    Budget.objects.create(scope="user", subject_id=caller.user_id, period="day", limit_usd="0.4")
    budget_cache_invalidate()
    barrier = threading.Barrier(2)

    def one(_):
        barrier.wait()
        return caller.post(stream=True)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(one, range(2)))
    try:
        assert sorted(response.status_code for response in responses) == [200, 402]
    finally:
        openai_upstream.script.hold_body.set()
        for response in responses:
            _ = response.content  # to its end, so the admitted one settles as done
            response.close()
    usage_flush()
    assert sorted(row.status for row in usage_rows()) == [UsageStatus.OK, UsageStatus.REJECTED]


def test_provider_deleted_while_a_stream_is_in_flight(caller, openai_upstream):
    from lumina.providers.services.registry import provider_delete
    from lumina.security.types import Actor

    deployment = _deployment(openai_upstream, provider="doomed")
    openai_upstream.script.chunks = 10
    openai_upstream.script.interval = 0.05
    response = caller.post(stream=True)
    lines = response.iter_lines()
    assert next(line for line in lines if line).startswith(b"data: ")
    provider_delete(actor=Actor.system("providers"), provider_id=deployment.provider_id)
    rest = [line for line in lines if line]
    assert rest[-1] == b"data: [DONE]"  # the stream in flight finishes
    usage_flush()
    [row] = usage_rows()
    assert (row.status, row.provider_name) == (UsageStatus.OK, "doomed")
    again = caller.post()
    assert again.status_code == 404  # and the model is gone for the next request


def test_every_answer_carries_overhead_and_request_id(caller, openai_upstream):
    _deployment(openai_upstream, provider="timed")
    response = caller.post(headers={"X-Request-ID": "trace-42"})
    assert float(response.headers["X-Lumina-Overhead-Ms"]) >= 0
    assert response.headers["X-Request-ID"] == "trace-42"
    assert response.headers["Cache-Control"] == "no-store"
    refused = caller.post({"model": "chat", "messages": []})
    assert refused.status_code == 400
    assert "X-Lumina-Overhead-Ms" in refused.headers


def test_malformed_json_body_is_a_400_naming_the_body(caller):
    response = caller.post(raw=b"{not json")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "body"


def test_unknown_path_and_wrong_method_answer_in_openai_shape(asgi_server):
    assert requests.get(f"{asgi_server.url}/v1/nothing", timeout=5).status_code == 404
    wrong = requests.get(f"{asgi_server.url}/v1/chat/completions", timeout=5)
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"


def test_a_host_not_allowed_is_refused(asgi_server, settings):
    settings.ALLOWED_HOSTS = ["lumina.example"]
    response = requests.get(f"{asgi_server.url}/v1/models", timeout=5)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_host"


def test_selection_skips_a_candidate_the_budget_cannot_pay_for(caller, openai_upstream):
    _deployment(
        openai_upstream, provider="dear", priority=10, input_price=Decimal(5000), output_price=0
    )
    _deployment(openai_upstream, provider="cheap", input_price=Decimal(1), output_price=0)
    Budget.objects.create(scope="user", subject_id=caller.user_id, period="day", limit_usd="0.01")
    budget_cache_invalidate()
    response = caller.post(
        {"model": "lumina/auto:priority", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert response.status_code == 200
    usage_flush()
    [row] = usage_rows()
    assert row.provider_name == "cheap"
