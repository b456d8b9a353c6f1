"""The offline ``local`` provider: lumina-dev-chat's documented rule, and MiniLM embeddings."""

from __future__ import annotations

import asyncio
import base64
import threading

import numpy as np
import orjson
import pytest

from lumina.providers.adapters import adapter_for
from lumina.providers.adapters import local as local_adapter
from lumina.providers.adapters.base import UpstreamError
from lumina.providers.adapters.local import DEV_CHAT_MODEL, EMBEDDING_MODEL, LABEL
from lumina.providers.tokens import count_request_tokens, count_text_tokens
from lumina.providers.types import ProviderKind
from tests.providers.adapters_support import collect, endpoint, streamed_text

pytestmark = pytest.mark.asyncio

adapter = adapter_for(ProviderKind.LOCAL)
CHAT = endpoint(ProviderKind.LOCAL, "", model=DEV_CHAT_MODEL, api_key=None)
EMBED = endpoint(ProviderKind.LOCAL, "", model=EMBEDDING_MODEL, api_key=None)
TOOLS = [
    {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}},
]


def request(text: str = "What is  Lumina?", **extra):
    return {
        "model": DEV_CHAT_MODEL,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "an earlier question"},
            {"role": "assistant", "content": "an earlier answer"},
            {"role": "user", "content": text},
        ],
        **extra,
    }


async def test_dev_chat_answers_by_its_documented_rule_and_says_it_is_not_an_llm():
    completion = await adapter.chat(CHAT, request())

    message = completion.body["choices"][0]["message"]
    assert message == {
        "role": "assistant",
        "content": f"{LABEL} You said: What is  Lumina?",
    }
    assert "not an LLM" in message["content"]
    assert completion.body["model"] == DEV_CHAT_MODEL
    assert completion.body["choices"][0]["finish_reason"] == "stop"


async def test_dev_chat_is_deterministic():
    first = await adapter.chat(CHAT, request())
    second = await adapter.chat(CHAT, request())

    assert first.body["choices"] == second.body["choices"]
    assert first.usage == second.usage


async def test_dev_chat_reads_text_parts_of_the_last_user_message():
    parts = [
        {"type": "text", "text": "Describe"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
        {"type": "text", "text": "this."},
    ]
    body = {"messages": [{"role": "user", "content": parts}]}

    completion = await adapter.chat(CHAT, body)

    assert completion.body["choices"][0]["message"]["content"].endswith("You said: Describe this.")


async def test_usage_is_counted_by_the_token_estimator():
    completion = await adapter.chat(CHAT, request())

    content = completion.body["choices"][0]["message"]["content"]
    assert completion.usage.input_tokens == count_request_tokens(request())
    assert completion.usage.output_tokens == pytest.approx(count_text_tokens(content), abs=2)
    assert completion.usage.estimated is False
    assert completion.body["usage"] == completion.usage.to_openai()


async def test_stream_sends_one_word_per_chunk_and_matches_the_whole_answer():
    whole = await adapter.chat(CHAT, request())
    chunks = await collect(adapter, CHAT, request())

    content = whole.body["choices"][0]["message"]["content"]
    words = content.split()
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    pieces = [c["choices"][0]["delta"]["content"] for c in chunks[1:-2]]
    assert [piece.strip() for piece in pieces] == words
    assert streamed_text(chunks) == content
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == whole.body["usage"]  # streamed costs what non-streamed does
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1


async def test_max_tokens_cuts_the_answer_at_a_word_and_reports_length():
    completion = await adapter.chat(CHAT, request(max_tokens=20))
    chunks = await collect(adapter, CHAT, request(max_completion_tokens=20))

    content = completion.body["choices"][0]["message"]["content"]
    assert completion.body["choices"][0]["finish_reason"] == "length"
    assert completion.usage.output_tokens <= 20
    assert content == f"{LABEL} You said: What"
    assert streamed_text(chunks) == content
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"


async def test_json_mode_returns_a_json_object():
    completion = await adapter.chat(CHAT, request(response_format={"type": "json_object"}))

    answer = orjson.loads(completion.body["choices"][0]["message"]["content"])
    assert answer["you_said"] == "What is  Lumina?"
    assert answer["model"] == DEV_CHAT_MODEL
    assert "not an LLM" in answer["note"]


@pytest.mark.parametrize(
    ("tool_choice", "name"),
    [("required", "search"), ({"type": "function", "function": {"name": "lookup"}}, "lookup")],
)
async def test_forced_tool_choice_returns_a_call_with_empty_arguments(tool_choice, name):
    completion = await adapter.chat(CHAT, request(tools=TOOLS, tool_choice=tool_choice))
    chunks = await collect(adapter, CHAT, request(tools=TOOLS, tool_choice=tool_choice))

    choice = completion.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["function"] == {"name": name, "arguments": "{}"}
    assert call["type"] == "function"
    streamed = chunks[1]["choices"][0]["delta"]["tool_calls"][0]
    assert streamed["index"] == 0
    assert streamed["function"] == {"name": name, "arguments": "{}"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


async def test_tools_without_a_forced_choice_get_a_text_answer():
    completion = await adapter.chat(CHAT, request(tools=TOOLS, tool_choice="auto"))

    assert completion.body["choices"][0]["message"]["content"].startswith(LABEL)


async def test_unknown_local_model_is_a_not_found_error():
    other = endpoint(ProviderKind.LOCAL, "", model="gpt-5", api_key=None)

    with pytest.raises(UpstreamError) as caught:
        await adapter.chat(other, request())

    assert caught.value.status == 404
    assert caught.value.code == "upstream_not_found"


async def test_embeddings_are_384_unit_vectors_in_openais_shape():
    result = await adapter.embed(EMBED, {"model": EMBEDDING_MODEL, "input": ["hello", "world"]})

    assert result.body["object"] == "list"
    assert result.body["model"] == EMBEDDING_MODEL
    vectors = np.array([item["embedding"] for item in result.body["data"]])
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert result.usage.input_tokens == 6  # [CLS] hello [SEP], [CLS] world [SEP]
    assert result.body["usage"] == {"prompt_tokens": 6, "total_tokens": 6}


async def test_embeddings_in_base64_decode_to_the_same_floats():
    floats = await adapter.embed(EMBED, {"input": "hello"})
    packed = await adapter.embed(EMBED, {"input": "hello", "encoding_format": "base64"})

    decoded = np.frombuffer(base64.b64decode(packed.body["data"][0]["embedding"]), dtype="<f4")
    assert np.array_equal(decoded, np.array(floats.body["data"][0]["embedding"], dtype="<f4"))


async def test_embedding_runs_off_the_event_loop(monkeypatch):
    from lumina.providers.local import minilm

    threads = []
    real = minilm.embed

    def spy(texts):
        threads.append(threading.current_thread())
        return real(texts)

    monkeypatch.setattr(minilm, "embed", spy)
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    task = asyncio.create_task(ticker())
    await adapter.embed(EMBED, {"input": [f"sentence number {i}" for i in range(64)]})
    task.cancel()

    assert threads
    assert threads[0] is not threading.main_thread()
    assert ticks > 0


@pytest.mark.parametrize(
    "body",
    [{"input": [1, 2, 3]}, {"input": []}, {"input": "x", "dimensions": 256}],
)
async def test_bad_embedding_requests_are_refused(body):
    with pytest.raises(UpstreamError) as caught:
        await adapter.embed(EMBED, body)

    assert caught.value.code == "upstream_bad_request"


async def test_reply_rule_without_a_user_message():
    assert local_adapter.last_user_text([]) == "(no user message)"
    assert local_adapter.reply_text({"messages": []}) == f"{LABEL} You said: (no user message)"
