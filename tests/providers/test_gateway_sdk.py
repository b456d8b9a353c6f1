"""The official ``openai`` SDK, unchanged, against Lumina's ``/v1`` on a real ASGI server."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import openai
import pytest

from lumina.providers.services.usage import usage_flush
from lumina.providers.types import Capability, ProviderKind
from tests.providers.factories import DeploymentFactory, ProviderFactory
from tests.providers.gateway_support import lumina_token, usage_rows
from tests.security.rbac_support import give_role, make_user

pytestmark = [pytest.mark.django_db(transaction=True)]

UPSTREAM_KEY = "sk-upstream-secret-1234567890"


@pytest.fixture
def mini(openai_upstream):
    """``gpt-mini``: an OpenAI-compatible provider on the loopback upstream."""
    openai_upstream.script.expect_api_key = UPSTREAM_KEY
    provider = ProviderFactory(
        name="upstream",
        kind=ProviderKind.OPENAI_COMPATIBLE.value,
        base_url=openai_upstream.url,
        api_key=UPSTREAM_KEY,
    )
    return DeploymentFactory(
        provider=provider,
        name="gpt-mini",
        upstream_model="gpt-mini-2026",
        capabilities=[Capability.CHAT, Capability.STREAMING, Capability.TOOLS],
        input_price=Decimal("0.15"),
        cached_input_price=Decimal("0.075"),
        output_price=Decimal("0.60"),
        reasoning_price=Decimal("0.60"),
    )


@pytest.fixture
def client(asgi_server):
    user = make_user("sdk@example.com")
    give_role(user, "Developer")
    return openai.OpenAI(
        base_url=f"{asgi_server.url}/v1", api_key=lumina_token(user), max_retries=0
    )


def test_sdk_chat_completion_is_served_by_the_selected_provider(client, mini, openai_upstream):
    answer = client.chat.completions.create(
        model="gpt-mini", messages=[{"role": "user", "content": "Say hello"}]
    )

    assert answer.choices[0].message.content == openai_upstream.script.answer
    assert answer.usage.prompt_tokens == openai_upstream.script.prompt_tokens
    sent = openai_upstream.requests[-1]
    assert sent.body["model"] == "gpt-mini-2026"
    assert sent.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_sdk_stream_forwards_every_chunk_and_usage_when_asked(client, mini, openai_upstream):
    openai_upstream.script.chunks = 6
    stream = client.chat.completions.create(
        model="gpt-mini",
        messages=[{"role": "user", "content": "Say hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == openai_upstream.script.answer
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == openai_upstream.script.completion_tokens


def test_stream_without_include_usage_sends_no_usage_chunk(client, mini):
    chunks = list(
        client.chat.completions.create(
            model="gpt-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)


def test_streamed_request_records_the_same_cost_as_its_non_streamed_twin(
    client, mini, openai_upstream
):
    openai_upstream.script.cached_tokens = 4
    openai_upstream.script.reasoning_tokens = 3
    messages = [{"role": "user", "content": "Price me"}]
    client.chat.completions.create(model="gpt-mini", messages=messages)
    list(client.chat.completions.create(model="gpt-mini", messages=messages, stream=True))

    usage_flush()
    plain, streamed = sorted(usage_rows(), key=lambda row: row.stream)
    assert (plain.stream, streamed.stream) == (False, True)
    assert plain.cost == streamed.cost > 0
    assert (streamed.cached_input_tokens, streamed.reasoning_tokens) == (4, 3)
    assert not streamed.estimated
    # Per million: 8 input at 0.15, 4 cached at 0.075, 4 output and 3 reasoning at 0.60.
    assert plain.cost == Decimal("0.0000057")


def test_sdk_async_client_runs_concurrent_requests(asgi_server, mini):
    user = make_user("async@example.com")
    give_role(user, "Developer")
    token = lumina_token(user)

    async def main():
        client = openai.AsyncOpenAI(base_url=f"{asgi_server.url}/v1", api_key=token, max_retries=0)
        async with client:
            answers = await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model="gpt-mini", messages=[{"role": "user", "content": f"#{n}"}]
                    )
                    for n in range(8)
                )
            )
            stream = await client.chat.completions.create(
                model="gpt-mini", messages=[{"role": "user", "content": "s"}], stream=True
            )
            streamed = [chunk async for chunk in stream]
        return answers, streamed

    answers, streamed = asyncio.run(main())
    assert len({answer.id for answer in answers}) == 8
    assert streamed[-1].choices[0].finish_reason == "stop"


def test_sdk_lists_models_including_the_local_ones_and_auto(client, mini):
    ids = {model.id for model in client.models.list()}
    assert {"gpt-mini", "lumina/auto", "lumina-dev-chat", "all-MiniLM-L6-v2"} <= ids


def test_sdk_embeddings_from_the_local_model_are_384_floats(client):
    result = client.embeddings.create(model="all-MiniLM-L6-v2", input=["a cat", "a dog"])
    assert [len(item.embedding) for item in result.data] == [384, 384]
    norm = sum(value * value for value in result.data[0].embedding)
    assert abs(norm - 1) < 1e-3


def test_sdk_local_chat_model_works_with_no_provider_configured(client):
    answer = client.chat.completions.create(
        model="lumina-dev-chat", messages=[{"role": "user", "content": "ping"}]
    )
    assert "ping" in answer.choices[0].message.content
    assert answer.usage.total_tokens > 0


def test_sdk_tool_calls_come_back_in_openai_shape(client, mini, openai_upstream):
    openai_upstream.script.tool_call = ("get_time", {"city": "Paris"})
    tool = {
        "type": "function",
        "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
    }
    answer = client.chat.completions.create(
        model="gpt-mini", messages=[{"role": "user", "content": "time?"}], tools=[tool]
    )
    call = answer.choices[0].message.tool_calls[0]
    assert call.function.name == "get_time"
    assert call.function.arguments == '{"city":"Paris"}' or '"Paris"' in call.function.arguments
    assert openai_upstream.requests[-1].body["tools"] == [tool]


def test_unknown_model_is_a_404_in_openai_shape(client, mini):
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert raised.value.body["code"] == "model_not_found"
    assert raised.value.body["param"] == "model"


def test_bad_message_shape_names_the_field(client, mini):
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="gpt-mini", messages=[{"role": "wizard"}])
    assert raised.value.body["param"] == "messages[0].role"
    assert raised.value.body["type"] == "invalid_request_error"


def test_too_many_tokens_for_the_context_window_is_refused(client, mini):
    DeploymentFactory(provider=mini.provider, name="tiny", context_window=50)
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "word " * 200}]
        )
    assert raised.value.body["code"] == "context_length_exceeded"


def test_a_bad_token_is_a_401(asgi_server, mini):
    client = openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key="lum_" + "x" * 43)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(
            model="gpt-mini", messages=[{"role": "user", "content": "x"}]
        )


def test_a_user_without_providers_use_is_refused(asgi_server, mini):
    viewer = make_user("viewer@example.com")
    give_role(viewer, "Viewer")
    client = openai.OpenAI(
        base_url=f"{asgi_server.url}/v1", api_key=lumina_token(viewer), max_retries=0
    )
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(
            model="gpt-mini", messages=[{"role": "user", "content": "x"}]
        )
