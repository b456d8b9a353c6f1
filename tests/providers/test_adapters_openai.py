"""The OpenAI adapter (OpenAI, Azure OpenAI, OpenAI-compatible) against a loopback upstream."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

import orjson
import pytest

from lumina.providers.adapters import adapter_for
from lumina.providers.adapters import http as adapter_http
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

adapter = adapter_for(ProviderKind.OPENAI)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


async def test_chat_sends_the_providers_model_name_and_bearer_key(openai_upstream):
    target = endpoint(ProviderKind.OPENAI, openai_upstream.url, model="gpt-4o-mini-2024-07-18")

    completion = await adapter.chat(target, chat_request(temperature=0.2))

    received = openai_upstream.requests[-1]
    assert received.path == "/v1/chat/completions"
    assert received.headers["Authorization"] == f"Bearer {API_KEY}"
    assert received.headers["Content-Type"] == "application/json"
    assert received.body == {
        "model": "gpt-4o-mini-2024-07-18",
        "messages": [{"role": "user", "content": "Hi there"}],
        "temperature": 0.2,
    }
    assert completion.body["choices"][0]["message"]["content"] == openai_upstream.script.answer
    assert completion.body["system_fingerprint"] == "fp_loopback"  # passed through untouched


async def test_chat_splits_cached_and_reasoning_tokens_into_their_buckets(openai_upstream):
    script = openai_upstream.script
    script.prompt_tokens, script.cached_tokens = 100, 60
    script.completion_tokens, script.reasoning_tokens = 50, 20

    completion = await adapter.chat(
        endpoint(ProviderKind.OPENAI, openai_upstream.url), chat_request()
    )

    assert completion.usage == Usage(
        input_tokens=40, cached_input_tokens=60, output_tokens=30, reasoning_tokens=20
    )


async def test_chat_without_usage_reports_none(openai_upstream):
    openai_upstream.script.omit_usage = True

    completion = await adapter.chat(
        endpoint(ProviderKind.OPENAI, openai_upstream.url), chat_request()
    )

    assert completion.usage is None


async def test_chat_passes_tools_through_and_returns_tool_calls(openai_upstream):
    openai_upstream.script.tool_call = ("get_weather", {"city": "Paris"})
    request = chat_request(tools=TOOLS, tool_choice="auto")

    completion = await adapter.chat(endpoint(ProviderKind.OPENAI, openai_upstream.url), request)

    assert openai_upstream.requests[-1].body["tools"] == TOOLS
    assert openai_upstream.requests[-1].body["tool_choice"] == "auto"
    choice = completion.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert orjson.loads(call["function"]["arguments"]) == {"city": "Paris"}


async def test_chat_drops_stream_flags_a_caller_left_in(openai_upstream):
    target = endpoint(ProviderKind.OPENAI, openai_upstream.url)

    await adapter.chat(target, chat_request(stream=True, stream_options={"include_usage": True}))

    assert "stream" not in openai_upstream.requests[-1].body
    assert "stream_options" not in openai_upstream.requests[-1].body


async def test_stream_always_asks_upstream_for_usage(openai_upstream):
    target = endpoint(ProviderKind.OPENAI, openai_upstream.url)

    await collect(adapter, target, chat_request())
    await collect(adapter, target, chat_request(stream_options={"include_usage": False}))

    for received in openai_upstream.requests:
        assert received.body["stream"] is True
        assert received.body["stream_options"] == {"include_usage": True}


async def test_stream_yields_the_providers_chunks_unchanged_and_usage_last(openai_upstream):
    script = openai_upstream.script
    script.chunks, script.cached_tokens, script.reasoning_tokens = 4, 2, 3

    chunks = await collect(
        adapter, endpoint(ProviderKind.OPENAI, openai_upstream.url), chat_request()
    )

    assert len(chunks) == 1 + 4 + 1 + 1  # role, content, finish, usage
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert all("usage" in chunk and "system_fingerprint" in chunk for chunk in chunks)
    assert streamed_text(chunks) == script.answer
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert Usage.from_openai(chunks[-1]["usage"]) == Usage(
        input_tokens=10, cached_input_tokens=2, output_tokens=4, reasoning_tokens=3
    )


async def test_stream_passes_tool_call_deltas_through(openai_upstream):
    openai_upstream.script.tool_call = ("get_weather", {"city": "Oslo"})

    chunks = await collect(
        adapter, endpoint(ProviderKind.OPENAI, openai_upstream.url), chat_request(tools=TOOLS)
    )

    calls = [
        call
        for chunk in chunks
        for choice in chunk["choices"]
        for call in choice["delta"].get("tool_calls") or []
    ]
    assert calls[0]["function"]["name"] == "get_weather"
    assert calls[0]["id"].startswith("call_")
    arguments = "".join(call["function"]["arguments"] for call in calls)
    assert orjson.loads(arguments) == {"city": "Oslo"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


async def _until(condition, *, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the upstream never got there")


def _pooled() -> bool:
    # The upstream ending the body is not enough: the client reads that end on its own
    # time, and the connection is back in the pool only once it has.
    return not adapter_http._draining


async def test_streams_reuse_one_pooled_connection(openai_upstream):
    script = openai_upstream.script
    script.hold_body = threading.Event()  # the body ends only when the test says so
    target = endpoint(ProviderKind.OPENAI, openai_upstream.url)

    await collect(adapter, target, chat_request())
    assert script.bodies_ended == 0  # the stream ended at [DONE], not with the body
    script.hold_body.set()
    await _until(lambda: script.bodies_ended == 1 and _pooled())  # drained in the background
    await collect(adapter, target, chat_request())
    await _until(lambda: script.bodies_ended == 2 and _pooled())
    await adapter.chat(target, chat_request())

    peers = {received.peer for received in openai_upstream.requests}
    assert len(peers) == 1


async def test_consumer_stopping_early_frees_the_connection(openai_upstream):
    openai_upstream.script.chunks = 10
    target = endpoint(ProviderKind.OPENAI, openai_upstream.url)

    stream = adapter.stream(target, chat_request())
    first = await anext(stream)
    await stream.aclose()
    completion = await adapter.chat(target, chat_request())

    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert completion.body["choices"][0]["message"]["content"] == openai_upstream.script.answer


async def test_openai_compatible_server_without_key_gets_no_authorization(openai_upstream):
    target = endpoint(
        ProviderKind.OPENAI_COMPATIBLE,
        openai_upstream.url,
        model="meta-llama/Llama-3.1-8B-Instruct",
        api_key=None,
        headers=(("HTTP-Referer", "https://lumina.example"),),
    )

    await adapter.chat(target, chat_request())

    received = openai_upstream.requests[-1]
    assert "Authorization" not in received.headers
    assert received.headers["HTTP-Referer"] == "https://lumina.example"
    assert received.body["model"] == "meta-llama/Llama-3.1-8B-Instruct"


async def test_azure_calls_the_deployment_with_api_version_and_api_key_header(openai_upstream):
    target = endpoint(
        ProviderKind.AZURE_OPENAI,
        openai_upstream.root,
        model="my-gpt4o",
        api_version="2024-10-21",
    )

    completion = await adapter.chat(target, chat_request())
    chunks = await collect(adapter, target, chat_request())

    for received in openai_upstream.requests:
        assert received.path == "/openai/deployments/my-gpt4o/chat/completions"
        assert received.query == {"api-version": "2024-10-21"}
        assert received.headers["api-key"] == API_KEY
        assert "Authorization" not in received.headers
        assert "model" not in received.body
    assert completion.usage is not None
    assert chunks[-1]["usage"]["total_tokens"] == 19


async def test_azure_embeddings_use_the_deployment_url(openai_upstream):
    target = endpoint(ProviderKind.AZURE_OPENAI, openai_upstream.root, model="embed-small")

    result = await adapter.embed(target, {"model": "x", "input": "hello"})

    received = openai_upstream.requests[-1]
    assert received.path == "/openai/deployments/embed-small/embeddings"
    assert received.query["api-version"]
    assert len(result.body["data"]) == 1


async def test_embeddings_pass_through_with_usage(openai_upstream):
    openai_upstream.script.prompt_tokens = 9
    target = endpoint(ProviderKind.OPENAI, openai_upstream.url, model="text-embedding-3-small")

    result = await adapter.embed(
        target, {"model": "embed", "input": ["a", "b"], "encoding_format": "base64"}
    )

    received = openai_upstream.requests[-1]
    assert received.path == "/v1/embeddings"
    assert received.body == {
        "model": "text-embedding-3-small",
        "input": ["a", "b"],
        "encoding_format": "base64",
    }
    raw = base64.b64decode(result.body["data"][1]["embedding"])
    assert len(struct.unpack(f"<{len(raw) // 4}f", raw)) == 8
    assert result.usage == Usage(input_tokens=9)


@pytest.mark.parametrize(
    ("status", "retryable", "code", "provider_code", "text"),
    [
        (429, True, "upstream_rate_limited", "rate_limit_exceeded", "Rate limit reached"),
        (500, True, "upstream_server_error", "server_error", "The server had an error"),
        (503, True, "upstream_server_error", "server_error", "currently overloaded"),
        (400, False, "upstream_bad_request", "invalid_request_error", "Invalid request."),
        (404, False, "upstream_not_found", "model_not_found", "does not exist"),
    ],
)
async def test_error_answers_become_upstream_errors(
    openai_upstream, caplog, status, retryable, code, provider_code, text
):
    openai_upstream.script.fail_next, openai_upstream.script.fail_status = 1, status
    target = endpoint(ProviderKind.OPENAI, openai_upstream.url)

    with pytest.raises(UpstreamError) as caught:
        await adapter.chat(target, chat_request())

    error = caught.value
    assert (error.status, error.retryable, error.code) == (status, retryable, code)
    assert error.provider_code == provider_code
    # The provider's words reach the operator's log, never the caller.
    assert text not in error.message
    assert text in caplog.text
    assert "test-openai" in error.message
    assert error.retry_after is None


async def test_retry_after_seconds_is_honoured(openai_upstream):
    script = openai_upstream.script
    script.fail_next, script.fail_status, script.retry_after = 1, 429, "7"

    with pytest.raises(UpstreamError) as caught:
        await adapter.chat(endpoint(ProviderKind.OPENAI, openai_upstream.url), chat_request())

    assert caught.value.retry_after == 7.0


async def test_retry_after_ms_wins_over_retry_after(openai_upstream):
    script = openai_upstream.script
    script.fail_next, script.fail_status = 1, 429
    script.retry_after, script.retry_after_ms = "7", "1500"

    with pytest.raises(UpstreamError) as caught:
        await adapter.chat(endpoint(ProviderKind.OPENAI, openai_upstream.url), chat_request())

    assert caught.value.retry_after == 1.5


async def test_retry_after_as_an_http_date_becomes_seconds(openai_upstream):
    script = openai_upstream.script
    script.fail_next, script.fail_status = 1, 503
    script.retry_after = email.utils.formatdate(time.time() + 30, usegmt=True)

    with pytest.raises(UpstreamError) as caught:
        await adapter.chat(endpoint(ProviderKind.OPENAI, openai_upstream.url), chat_request())

    assert 25 <= caught.value.retry_after <= 31


async def test_stream_error_status_raises_before_any_chunk(openai_upstream):
    openai_upstream.script.fail_next, openai_upstream.script.fail_status = 1, 429
    stream = adapter.stream(endpoint(ProviderKind.OPENAI, openai_upstream.url), chat_request())

    with pytest.raises(UpstreamError) as caught:
        await anext(stream)

    assert caught.value.status == 429
    assert caught.value.retryable


async def test_connection_refused_is_a_retryable_unreachable_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    target = endpoint(ProviderKind.OPENAI, f"http://127.0.0.1:{port}/v1")

    with pytest.raises(UpstreamError) as caught:
        await adapter.chat(target, chat_request())

    assert caught.value.code == "upstream_unreachable"
    assert caught.value.retryable
    assert caught.value.status is None


async def test_upstream_that_never_answers_times_out(openai_upstream):
    openai_upstream.script.hang = True
    target = endpoint(ProviderKind.OPENAI, openai_upstream.url, read_timeout=0.3)

    with pytest.raises(UpstreamTimeout) as caught:
        await adapter.chat(target, chat_request())

    assert caught.value.retryable
    assert caught.value.code == "upstream_timeout"


async def test_stream_that_stalls_times_out(openai_upstream):
    openai_upstream.script.stall_after = 2
    target = endpoint(ProviderKind.OPENAI, openai_upstream.url, read_timeout=0.3)
    received = []

    with pytest.raises(UpstreamTimeout):
        await collect_into(received, adapter, target, chat_request())

    assert len(received) == 3  # the role chunk and two pieces arrived first


async def test_stream_cut_mid_way_raises_stream_cut(openai_upstream):
    openai_upstream.script.cut_after = 2
    received = []

    with pytest.raises(UpstreamError) as caught:
        await collect_into(
            received, adapter, endpoint(ProviderKind.OPENAI, openai_upstream.url), chat_request()
        )

    assert caught.value.code == "upstream_stream_cut"
    assert not caught.value.retryable
    assert len(received) == 3


async def test_stream_ending_without_done_raises_stream_cut(openai_upstream):
    openai_upstream.script.omit_end = True

    with pytest.raises(UpstreamError) as caught:
        await collect(adapter, endpoint(ProviderKind.OPENAI, openai_upstream.url), chat_request())

    assert caught.value.code == "upstream_stream_cut"
    assert "[DONE]" in caught.value.message


async def test_malformed_sse_raises_protocol_error(openai_upstream):
    openai_upstream.script.malformed_after = 1

    with pytest.raises(UpstreamProtocolError) as caught:
        await collect(adapter, endpoint(ProviderKind.OPENAI, openai_upstream.url), chat_request())

    assert caught.value.code == "upstream_protocol_error"
    assert "test-openai" in caught.value.message


async def test_mid_stream_error_event_raises_upstream_error(openai_upstream, caplog):
    openai_upstream.script.error_after = 2
    received = []

    with pytest.raises(UpstreamError) as caught:
        await collect_into(
            received, adapter, endpoint(ProviderKind.OPENAI, openai_upstream.url), chat_request()
        )

    assert caught.value.code == "upstream_stream_error"
    assert caught.value.provider_code == "server_error"
    assert "The server had an error" not in caught.value.message
    assert "The server had an error" in caplog.text
    assert len(received) == 3


async def test_api_key_never_appears_in_errors(openai_upstream, caplog):
    script = openai_upstream.script
    script.expect_api_key, script.echo_key_in_errors = "sk-the-right-one", True
    target = endpoint(ProviderKind.OPENAI, openai_upstream.url)

    with pytest.raises(UpstreamError) as caught:
        await adapter.chat(target, chat_request())

    error = caught.value
    assert error.status == 401
    assert error.code == "upstream_auth_failed"
    assert "Incorrect API key provided" in caplog.text  # the key echoed back is there to leak
    for text in (str(error), repr(error), error.message, *map(str, error.args), caplog.text):
        assert API_KEY not in text
    assert API_KEY not in repr(target)


async def test_benchmark_upstream_runs_as_its_own_process():
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.providers.upstreams.openai", "--port", "0", "--chunks", "3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.split()[-1]
        request = urllib.request.Request(
            url + "/v1/chat/completions",
            data=orjson.dumps(chat_request(stream=True)),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            body = answer.read().decode()
        events = [e for e in body.split("\n\n") if e]
        assert events[-1] == "data: [DONE]"
        assert len(events) == 1 + 3 + 1 + 1  # role, 3 pieces, finish, [DONE]
    finally:
        process.terminate()
        process.wait(5)
        process.stdout.close()
