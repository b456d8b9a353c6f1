"""``/api/v1/providers/completion`` and ``/providers/stream``, the probe, metrics, and the
other providers' wire formats behind ``/v1``."""

from __future__ import annotations

import time
from decimal import Decimal

import openai
import orjson
import pytest
import requests
from django.core.management import call_command

from lumina.providers.services.usage import usage_flush
from lumina.providers.types import Capability, ProviderKind, UsageStatus
from tests.providers.factories import DeploymentFactory, ProviderFactory
from tests.providers.gateway_support import lumina_token, usage_rows
from tests.security.rbac_support import give_role, make_user

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def token(asgi_server):
    user = make_user("rest@example.com")
    give_role(user, "Developer")
    return lumina_token(user)


def _post(server, path, token, body, **kwargs):
    return requests.post(
        f"{server.url}/api/v1/{path}",
        data=orjson.dumps(body),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=30,
        **kwargs,
    )


def test_completion_endpoint_names_the_provider_attempts_and_cost(
    asgi_server, token, openai_upstream
):
    DeploymentFactory(
        provider=ProviderFactory(name="primary", base_url=openai_upstream.url),
        name="chat",
        input_price=Decimal(1),
        output_price=Decimal(2),
    )
    openai_upstream.script.fail_next = 1
    response = _post(
        asgi_server,
        "providers/completion",
        token,
        {"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["provider"], body["model"]) == ("primary", "chat")
    assert [a["outcome"] for a in body["attempts"]] == ["retry", "ok"]
    # 12 prompt tokens at $1/M and 7 completion tokens at $2/M.
    assert Decimal(body["cost"]) == Decimal("0.000026")
    assert body["completion"]["choices"][0]["message"]["content"] == openai_upstream.script.answer


def test_completion_endpoint_refuses_bad_input_naming_the_field(asgi_server, token):
    response = _post(asgi_server, "providers/completion", token, {"messages": "nope"})
    assert response.status_code == 400
    assert "messages" in response.json()["error"]["fields"]


def test_stream_endpoint_sends_the_selection_then_chunks_then_done(
    asgi_server, token, openai_upstream
):
    DeploymentFactory(provider=ProviderFactory(name="streamer", base_url=openai_upstream.url))
    openai_upstream.script.chunks = 4
    response = _post(
        asgi_server,
        "providers/stream",
        token,
        {"model": "lumina/auto", "messages": [{"role": "user", "content": "hi"}]},
        stream=True,
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    lines = [line for line in response.iter_lines() if line]
    assert lines[0] == b"event: lumina.selected"
    assert orjson.loads(lines[1].removeprefix(b"data: "))["provider"] in {"streamer", "local"}
    assert lines[-1] == b"data: [DONE]"
    usage = orjson.loads(lines[-2].removeprefix(b"data: "))
    assert usage["choices"] == []


def test_stream_endpoint_with_every_provider_down_is_an_error_status(
    asgi_server, token, openai_upstream
):
    DeploymentFactory(provider=ProviderFactory(name="gone", base_url=openai_upstream.url))
    openai_upstream.script.fail_next = 100
    response = _post(
        asgi_server,
        "providers/stream",
        token,
        {"model": "gone/" + "model-x", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 404  # no such model under that provider
    assert response.json()["error"]["code"] == "model_not_found"


def test_anthropic_behind_v1_streams_to_the_openai_sdk(asgi_server, token, anthropic_upstream):
    DeploymentFactory(
        provider=ProviderFactory(
            name="claude", kind=ProviderKind.ANTHROPIC.value, base_url=anthropic_upstream.url
        ),
        name="sonnet",
        upstream_model="claude-sonnet-4-5",
        capabilities=[Capability.CHAT, Capability.STREAMING],
    )
    anthropic_upstream.script.cached_tokens = 5
    anthropic_upstream.script.cache_write_tokens = 2
    client = openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key=token, max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="sonnet",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hi"},
            ],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == anthropic_upstream.script.answer
    assert anthropic_upstream.requests[-1].body["system"] == "Be brief."
    usage_flush()
    [row] = usage_rows()
    assert (row.cached_input_tokens, row.cache_write_tokens) == (5, 2)
    assert row.status == UsageStatus.OK


def test_client_that_leaves_mid_stream_is_recorded_as_cancelled(
    asgi_server, token, openai_upstream
):
    DeploymentFactory(provider=ProviderFactory(name="long", base_url=openai_upstream.url))
    openai_upstream.script.chunks = 40
    openai_upstream.script.interval = 0.05
    body = {
        "model": "long/" + _deployment_name_of("long"),
        "messages": [{"role": "user", "content": "x"}],
        "stream": True,
    }
    response = requests.post(
        f"{asgi_server.url}/v1/chat/completions",
        data=orjson.dumps(body),
        headers={"Authorization": f"Bearer {token}"},
        stream=True,
        timeout=30,
    )
    lines = response.iter_lines()
    assert next(line for line in lines if line).startswith(b"data: ")
    response.close()  # the client goes away
    rows = []
    deadline = time.monotonic() + 10
    while not rows and time.monotonic() < deadline:
        time.sleep(0.05)  # the server notices the disconnect at its next chunk
        usage_flush()
        rows = usage_rows()
    [row] = rows
    assert row.status == UsageStatus.CANCELLED
    assert row.error_code == "client_disconnected"


def test_metrics_count_requests_tokens_and_overhead(asgi_server, token, openai_upstream):
    DeploymentFactory(provider=ProviderFactory(name="metered", base_url=openai_upstream.url))
    client = openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key=token, max_retries=0)
    model = _deployment_name_of("metered")
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    text = requests.get(f"{asgi_server.url}/metrics", timeout=10).text
    assert (
        f'lumina_provider_requests_total{{model="{model}",operation="chat",provider="metered",'
        f'status="ok"}}' in text
    )
    assert (
        f'lumina_provider_tokens_total{{kind="input",model="{model}",provider="metered"}}' in text
    )
    assert "lumina_gateway_overhead_seconds_bucket" in text


def _deployment_name_of(provider: str) -> str:
    from lumina.providers.models.registry import Deployment

    return Deployment.objects.get(provider__name=provider).name


def test_probe_records_what_works_and_what_does_not(openai_upstream, capsys):
    deployment = DeploymentFactory(
        provider=ProviderFactory(name="probed", base_url=openai_upstream.url),
        capabilities=[Capability.CHAT, Capability.STREAMING, Capability.EMBEDDINGS],
    )
    openai_upstream.script.answer = "OK"
    call_command("providers", "probe", "probed", "--all")
    out = capsys.readouterr().out
    assert "chat" in out
    deployment.refresh_from_db()
    verified = deployment.verified_capabilities
    assert verified["chat"]["ok"] is True
    assert verified["streaming"]["ok"] is True
    assert verified["embeddings"]["ok"] is True
    assert verified["json_mode"]["ok"] is False  # "OK" is not JSON
    assert verified["chat"]["latency_ms"] > 0
