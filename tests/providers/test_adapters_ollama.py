"""The Ollama adapter: OpenAI requests in, Ollama's native API on the wire, OpenAI shapes out."""

from __future__ import annotations

import base64
import struct

import orjson
import pytest

from lumina.providers.adapters import adapter_for
from lumina.providers.adapters.base import UpstreamError, UpstreamProtocolError, UpstreamTimeout
from lumina.providers.tokens import count_message_tokens
from lumina.providers.types import ProviderKind, Usage
from tests.providers.adapters_support import chat_request, collect, endpoint, streamed_text
from tests.providers.upstreams.base import fake_embedding

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("http_sessions")]

adapter = adapter_for(ProviderKind.OLLAMA)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def target(upstream, **options):
    options.setdefault("api_key", None)
    return endpoint(ProviderKind.OLLAMA, upstream.url, model="llama3.2", **options)


async def test_chat_request_maps_options_tools_and_format(ollama_upstream):
    request = chat_request(
        temperature=0.1,
        top_p=0.8,
        seed=7,
        max_tokens=64,
        stop="###",
        tools=TOOLS,
        response_format={"type": "json_object"},
    )

    await adapter.chat(target(ollama_upstream), request)

    received = ollama_upstream.requests[-1]
    assert received.path == "/api/chat"
    assert "Authorization" not in received.headers
    assert received.body == {
        "model": "llama3.2",
        "messages": [{"role": "user", "content": "Hi there"}],
        "stream": False,
        "options": {
            "temperature": 0.1,
            "top_p": 0.8,
            "seed": 7,
            "num_predict": 64,
            "stop": ["###"],
        },
        "tools": TOOLS,
        "format": "json",
    }


async def test_json_schema_becomes_ollamas_structured_format(ollama_upstream):
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    request = chat_request(
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    )

    await adapter.chat(target(ollama_upstream), request)

    assert ollama_upstream.requests[-1].body["format"] == schema


async def test_tool_conversation_uses_argument_objects_and_tool_names(ollama_upstream):
    request = {
        "model": "x",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is here?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Bern"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_9", "content": "12C"},
        ],
    }

    await adapter.chat(target(ollama_upstream), request)

    messages = ollama_upstream.requests[-1].body["messages"]
    assert messages[0] == {"role": "user", "content": "What is here?", "images": ["iVBORw0"]}
    assert messages[1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Bern"}}}],
    }
    assert messages[2] == {"role": "tool", "content": "12C", "tool_name": "get_weather"}


async def test_image_urls_that_are_not_data_urls_are_refused(ollama_upstream):
    content = [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]

    with pytest.raises(UpstreamError) as caught:
        await adapter.chat(
            target(ollama_upstream), {"messages": [{"role": "user", "content": content}]}
        )

    assert caught.value.code == "upstream_bad_request"
    assert ollama_upstream.requests == []


async def test_answer_maps_to_an_openai_completion_with_usage(ollama_upstream):
    ollama_upstream.script.prompt_tokens, ollama_upstream.script.completion_tokens = 26, 298

    completion = await adapter.chat(target(ollama_upstream), chat_request())

    body = completion.body
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "llama3.2"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": ollama_upstream.script.answer,
    }
    assert body["choices"][0]["finish_reason"] == "stop"
    assert completion.usage == Usage(input_tokens=26, output_tokens=298)
    assert body["usage"]["total_tokens"] == 324


async def test_tool_call_answer_maps_to_openai_tool_calls(ollama_upstream):
    ollama_upstream.script.tool_call = ("get_weather", {"city": "Bern"})

    completion = await adapter.chat(target(ollama_upstream), chat_request(tools=TOOLS))

    choice = completion.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    assert orjson.loads(call["function"]["arguments"]) == {"city": "Bern"}


async def test_answer_without_counts_has_no_usage(ollama_upstream):
    ollama_upstream.script.omit_usage = True

    completion = await adapter.chat(target(ollama_upstream), chat_request())

    assert completion.usage is None


async def test_stream_maps_ndjson_lines_to_chunks_with_usage_last(ollama_upstream):
    ollama_upstream.script.chunks = 4

    chunks = await collect(adapter, target(ollama_upstream), chat_request())

    assert ollama_upstream.requests[-1].body["stream"] is True
    assert len(chunks) == 1 + 4 + 1 + 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert streamed_text(chunks) == ollama_upstream.script.answer
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert Usage.from_openai(chunks[-1]["usage"]) == Usage(input_tokens=12, output_tokens=7)


async def test_stream_maps_tool_calls(ollama_upstream):
    ollama_upstream.script.tool_call = ("get_weather", {"city": "Bern"})

    chunks = await collect(adapter, target(ollama_upstream), chat_request(tools=TOOLS))

    calls = [
        call
        for chunk in chunks
        for choice in chunk["choices"]
        for call in choice["delta"].get("tool_calls") or []
    ]
    assert len(calls) == 1
    assert calls[0]["index"] == 0
    assert calls[0]["function"]["name"] == "get_weather"
    assert orjson.loads(calls[0]["function"]["arguments"]) == {"city": "Bern"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


async def test_stream_without_counts_sends_no_usage_chunk(ollama_upstream):
    ollama_upstream.script.omit_usage = True

    chunks = await collect(adapter, target(ollama_upstream), chat_request())

    assert all(chunk["choices"] for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_prompt_count_left_out_by_ollamas_cache_is_estimated(ollama_upstream):
    ollama_upstream.script.omit_prompt_count = True
    request = chat_request()

    completion = await adapter.chat(target(ollama_upstream), request)
    chunks = await collect(adapter, target(ollama_upstream), request)

    expected = Usage(
        input_tokens=count_message_tokens(request["messages"]), output_tokens=7, estimated=True
    )
    assert completion.usage == expected
    assert Usage.from_openai(chunks[-1]["usage"], estimated=True) == expected


async def test_error_line_mid_stream_raises(ollama_upstream, caplog):
    ollama_upstream.script.error_after = 2

    with pytest.raises(UpstreamError) as caught:
        await collect(adapter, target(ollama_upstream), chat_request())

    assert caught.value.code == "upstream_stream_error"
    assert "error was encountered while running the model" not in caught.value.message
    assert "error was encountered while running the model" in caplog.text


async def test_malformed_line_is_a_protocol_error(ollama_upstream):
    ollama_upstream.script.malformed_after = 1

    with pytest.raises(UpstreamProtocolError):
        await collect(adapter, target(ollama_upstream), chat_request())


@pytest.mark.parametrize("fault", ["cut_after", "omit_end"])
async def test_stream_without_the_done_line_is_cut(ollama_upstream, fault):
    if fault == "cut_after":
        ollama_upstream.script.cut_after = 2
    else:
        ollama_upstream.script.omit_end = True

    with pytest.raises(UpstreamError) as caught:
        await collect(adapter, target(ollama_upstream), chat_request())

    assert caught.value.code == "upstream_stream_cut"


async def test_stalled_stream_times_out(ollama_upstream):
    ollama_upstream.script.stall_after = 1

    with pytest.raises(UpstreamTimeout):
        await collect(adapter, target(ollama_upstream, read_timeout=0.3), chat_request())


@pytest.mark.parametrize(
    ("status", "retryable", "code", "text"),
    [
        (404, False, "upstream_not_found", 'model "llama3.2" not found'),
        (503, True, "upstream_server_error", "server busy"),
        (500, True, "upstream_server_error", "llama runner process has terminated"),
    ],
)
async def test_error_answers_log_ollamas_message(
    ollama_upstream, caplog, status, retryable, code, text
):
    ollama_upstream.script.fail_next, ollama_upstream.script.fail_status = 1, status

    with pytest.raises(UpstreamError) as caught:
        await adapter.chat(target(ollama_upstream), chat_request())

    assert (caught.value.status, caught.value.retryable, caught.value.code) == (
        status,
        retryable,
        code,
    )
    assert text not in caught.value.message
    assert text in caplog.text


async def test_key_is_sent_as_bearer_when_set(ollama_upstream):
    ollama_upstream.script.expect_api_key = "ollama-key"

    await adapter.chat(target(ollama_upstream, api_key="ollama-key"), chat_request())

    assert ollama_upstream.requests[-1].headers["Authorization"] == "Bearer ollama-key"


async def test_embeddings_map_to_openais_shape(ollama_upstream):
    ollama_upstream.script.prompt_tokens = 8

    result = await adapter.embed(
        target(ollama_upstream), {"model": "nomic", "input": ["one", "two"]}
    )

    received = ollama_upstream.requests[-1]
    assert received.path == "/api/embed"
    assert received.body == {"model": "llama3.2", "input": ["one", "two"]}
    assert result.body["object"] == "list"
    assert [item["index"] for item in result.body["data"]] == [0, 1]
    assert result.body["data"][1]["embedding"] == fake_embedding("two", 8)
    assert result.body["usage"] == {"prompt_tokens": 8, "total_tokens": 8}
    assert result.usage == Usage(input_tokens=8)


async def test_embeddings_honour_base64_encoding(ollama_upstream):
    result = await adapter.embed(
        target(ollama_upstream), {"input": "one", "encoding_format": "base64"}
    )

    raw = base64.b64decode(result.body["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert decoded == pytest.approx(fake_embedding("one", 8), abs=1e-6)
