"""The Anthropic adapter: OpenAI requests in, Messages API on the wire, OpenAI shapes out."""

from __future__ import annotations

import orjson
import pytest

from lumina.providers.adapters import adapter_for
from lumina.providers.adapters.base import UpstreamError, UpstreamProtocolError, UpstreamTimeout
from lumina.providers.types import ProviderKind, Usage
from tests.providers.adapters_support import (
    API_KEY,
    chat_request,
    collect,
    collect_into,
    endpoint,
    streamed_text,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("http_sessions")]

adapter = adapter_for(ProviderKind.ANTHROPIC)
MODEL = "claude-sonnet-4-5-20250929"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {"type": "function", "function": {"name": "now"}},
]
CHUNK_KEYS = {"id", "object", "created", "model", "choices"}


def target(upstream, **options):
    return endpoint(ProviderKind.ANTHROPIC, upstream.url, model=MODEL, **options)


async def test_request_carries_anthropic_headers_and_required_max_tokens(anthropic_upstream):
    await adapter.chat(target(anthropic_upstream), chat_request())

    received = anthropic_upstream.requests[-1]
    assert received.path == "/v1/messages"
    assert received.headers["x-api-key"] == API_KEY
    assert received.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in received.headers
    assert received.body == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Hi there"}],
        "max_tokens": 4096,
    }


async def test_request_maps_system_sampling_stop_and_limits(anthropic_upstream):
    request = {
        "model": "x",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
            {"role": "user", "content": "Weather?"},
        ],
        "max_completion_tokens": 300,
        "max_tokens": 999,
        "stop": "END",
        "temperature": 0.3,
        "top_p": 0.9,
        "user": "user-42",
    }

    await adapter.chat(target(anthropic_upstream), request)

    body = anthropic_upstream.requests[-1].body
    assert body["system"] == "Be brief.\n\nUse metric units."
    assert body["messages"] == [{"role": "user", "content": "Weather?"}]
    assert body["max_tokens"] == 300
    assert body["stop_sequences"] == ["END"]
    assert (body["temperature"], body["top_p"]) == (0.3, 0.9)
    assert body["metadata"] == {"user_id": "user-42"}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "now"}}, {"type": "tool", "name": "now"}),
    ],
)
async def test_tools_and_tool_choice_are_mapped(anthropic_upstream, choice, expected):
    await adapter.chat(target(anthropic_upstream), chat_request(tools=TOOLS, tool_choice=choice))

    body = anthropic_upstream.requests[-1].body
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"name": "now", "description": "", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert body["tool_choice"] == expected


async def test_disabling_parallel_tool_calls_is_mapped(anthropic_upstream):
    request = chat_request(tools=TOOLS, parallel_tool_calls=False)

    await adapter.chat(target(anthropic_upstream), request)

    assert anthropic_upstream.requests[-1].body["tool_choice"] == {
        "type": "auto",
        "disable_parallel_tool_use": True,
    }


async def test_tool_conversation_becomes_tool_use_and_merged_tool_results(anthropic_upstream):
    request = {
        "model": "x",
        "tools": TOOLS,
        "messages": [
            {"role": "user", "content": "Weather in Paris and the time?"},
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "now", "arguments": ""},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
            {
                "role": "tool",
                "tool_call_id": "call_2",
                "content": [{"type": "text", "text": "noon"}],
            },
            {"role": "user", "content": "Thanks!"},
        ],
    }

    await adapter.chat(target(anthropic_upstream), request)

    messages = anthropic_upstream.requests[-1].body["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "now", "input": {}},
        ],
    }
    assert messages[2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "18C, sunny"},
            {
                "type": "tool_result",
                "tool_use_id": "call_2",
                "content": [{"type": "text", "text": "noon"}],
            },
            {"type": "text", "text": "Thanks!"},
        ],
    }
    assert len(messages) == 3


async def test_images_become_base64_or_url_sources(anthropic_upstream):
    content = [
        {"type": "text", "text": "Compare:"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]

    await adapter.chat(
        target(anthropic_upstream),
        {"model": "x", "messages": [{"role": "user", "content": content}]},
    )

    blocks = anthropic_upstream.requests[-1].body["messages"][0]["content"]
    assert blocks == [
        {"type": "text", "text": "Compare:"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "QUJD"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
    ]


async def test_answer_maps_to_an_openai_completion_with_cache_buckets(anthropic_upstream):
    script = anthropic_upstream.script
    script.prompt_tokens, script.cached_tokens, script.cache_write_tokens = 100, 60, 30
    script.completion_tokens = 9

    completion = await adapter.chat(target(anthropic_upstream), chat_request())

    body = completion.body
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("msg_")
    assert body["model"] == MODEL
    assert body["choices"][0]["message"] == {"role": "assistant", "content": script.answer}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert completion.usage == Usage(
        input_tokens=10, cached_input_tokens=60, cache_write_tokens=30, output_tokens=9
    )
    assert body["usage"]["prompt_tokens"] == 100
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 60, "cache_write_tokens": 30}


async def test_tool_use_answer_maps_to_tool_calls_with_json_arguments(anthropic_upstream):
    anthropic_upstream.script.tool_call = ("get_weather", {"city": "Lyon"})

    completion = await adapter.chat(target(anthropic_upstream), chat_request(tools=TOOLS))

    choice = completion.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check."
    call = choice["message"]["tool_calls"][0]
    assert call["id"].startswith("toolu_")
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert orjson.loads(call["function"]["arguments"]) == {"city": "Lyon"}


async def test_stream_maps_events_to_openai_chunks_and_ignores_ping(anthropic_upstream):
    script = anthropic_upstream.script
    script.chunks = 3
    script.prompt_tokens, script.cached_tokens, script.cache_write_tokens = 50, 20, 5
    script.completion_tokens = 11

    chunks = await collect(adapter, target(anthropic_upstream), chat_request())

    assert len(chunks) == 1 + 3 + 1 + 1  # role, 3 text deltas, finish, usage (no ping)
    assert all(set(chunk) == CHUNK_KEYS for chunk in chunks[:-1])
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    ]
    assert streamed_text(chunks) == script.answer
    assert chunks[-2]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert set(chunks[-1]) == CHUNK_KEYS | {"usage"}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 50
    assert chunks[-1]["usage"]["completion_tokens"] == 11
    assert chunks[-1]["usage"]["prompt_tokens_details"] == {
        "cached_tokens": 20,
        "cache_write_tokens": 5,
    }


async def test_stream_maps_tool_use_to_tool_call_deltas(anthropic_upstream):
    anthropic_upstream.script.tool_call = ("get_weather", {"city": "Rome"})

    chunks = await collect(adapter, target(anthropic_upstream), chat_request(tools=TOOLS))

    deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]
    calls = [call for delta in deltas for call in delta.get("tool_calls") or []]
    assert calls[0]["index"] == 0
    assert calls[0]["id"].startswith("toolu_")
    assert calls[0]["type"] == "function"
    assert calls[0]["function"] == {"name": "get_weather", "arguments": ""}
    assert all(call["index"] == 0 and "id" not in call for call in calls[1:])
    arguments = "".join(call["function"]["arguments"] for call in calls)
    assert orjson.loads(arguments) == {"city": "Rome"}
    assert streamed_text(chunks) == "Let me check."
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


async def test_overloaded_error_event_mid_stream_is_retryable(anthropic_upstream, caplog):
    anthropic_upstream.script.error_after = 1
    received = []

    with pytest.raises(UpstreamError) as caught:
        await collect_into(received, adapter, target(anthropic_upstream), chat_request())

    assert caught.value.retryable
    assert caught.value.code == "upstream_overloaded"
    assert caught.value.provider_code == "overloaded_error"
    assert "Overloaded" not in caught.value.message
    assert "Overloaded" in caplog.text
    assert len(received) == 2


async def test_other_error_events_mid_stream_are_not_retryable(anthropic_upstream):
    anthropic_upstream.script.error_after = 1
    anthropic_upstream.script.error_type = "invalid_request_error"

    with pytest.raises(UpstreamError) as caught:
        await collect(adapter, target(anthropic_upstream), chat_request())

    assert not caught.value.retryable
    assert caught.value.code == "upstream_stream_error"


async def test_stream_without_message_stop_is_cut(anthropic_upstream):
    anthropic_upstream.script.omit_end = True

    with pytest.raises(UpstreamError) as caught:
        await collect(adapter, target(anthropic_upstream), chat_request())

    assert caught.value.code == "upstream_stream_cut"
    assert "message_stop" in caught.value.message


async def test_dropped_connection_mid_stream_is_cut(anthropic_upstream):
    anthropic_upstream.script.cut_after = 2

    with pytest.raises(UpstreamError) as caught:
        await collect(adapter, target(anthropic_upstream), chat_request())

    assert caught.value.code == "upstream_stream_cut"


async def test_malformed_event_data_is_a_protocol_error(anthropic_upstream):
    anthropic_upstream.script.malformed_after = 1

    with pytest.raises(UpstreamProtocolError):
        await collect(adapter, target(anthropic_upstream), chat_request())


async def test_hanging_upstream_times_out(anthropic_upstream):
    anthropic_upstream.script.hang = True

    with pytest.raises(UpstreamTimeout):
        await adapter.chat(target(anthropic_upstream, read_timeout=0.3), chat_request())


@pytest.mark.parametrize(
    ("status", "retryable", "code", "provider_code"),
    [
        (529, True, "upstream_overloaded", "overloaded_error"),
        (429, True, "upstream_rate_limited", "rate_limit_error"),
        (500, True, "upstream_server_error", "api_error"),
        (400, False, "upstream_bad_request", "invalid_request_error"),
        (403, False, "upstream_auth_failed", "permission_error"),
    ],
)
async def test_error_answers_keep_anthropics_error_type(
    anthropic_upstream, status, retryable, code, provider_code
):
    script = anthropic_upstream.script
    script.fail_next, script.fail_status, script.retry_after = 1, status, "12"

    with pytest.raises(UpstreamError) as caught:
        await adapter.chat(target(anthropic_upstream), chat_request())

    error = caught.value
    assert (error.status, error.retryable, error.code) == (status, retryable, code)
    assert error.provider_code == provider_code
    assert error.retry_after == 12.0


async def test_api_key_never_appears_in_errors(anthropic_upstream, caplog):
    anthropic_upstream.script.expect_api_key = "sk-ant-right"
    anthropic_upstream.script.echo_key_in_errors = True

    with pytest.raises(UpstreamError) as caught:
        await collect(adapter, target(anthropic_upstream), chat_request())

    assert caught.value.status == 401
    assert "invalid x-api-key" in caplog.text  # the key echoed back is there to leak
    assert API_KEY not in caplog.text
    assert API_KEY not in str(caught.value)
    assert API_KEY not in repr(caught.value)


async def test_embeddings_are_refused_without_calling_anthropic(anthropic_upstream):
    with pytest.raises(UpstreamError) as caught:
        await adapter.embed(target(anthropic_upstream), {"input": "hi"})

    assert caught.value.code == "upstream_unsupported"
    assert anthropic_upstream.requests == []
