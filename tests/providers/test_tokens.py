"""Lumina's own token counts: cl100k_base BPE, with OpenAI's chat message overhead."""

from __future__ import annotations

from lumina.providers.tokens import (
    IMAGE_TOKENS,
    IMAGE_TOKENS_LOW,
    count_message_tokens,
    count_request_tokens,
    count_text_tokens,
)

# OpenAI cookbook, "How to count tokens with tiktoken": 129 prompt tokens on gpt-4.
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on "
        "opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client "
        "deliverable.",
    },
]


def test_text_is_counted_with_a_real_bpe_vocabulary():
    assert count_text_tokens("") == 0
    assert count_text_tokens("hello world") == 2
    assert count_text_tokens("tiktoken is great!") == 6  # OpenAI's documented example


def test_chat_messages_match_openais_reference_count():
    assert count_message_tokens(COOKBOOK_MESSAGES) == 129


def test_text_that_looks_like_a_special_token_is_counted_as_text():
    assert count_text_tokens("<|endoftext|>") > 1


def test_text_parts_images_and_tool_calls_are_counted():
    text_only = count_message_tokens([{"role": "user", "content": "Describe this"}])
    with_images = count_message_tokens(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe this"},
                    {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "https://x/b.png"}},
                ],
            }
        ]
    )
    assert with_images == text_only + IMAGE_TOKENS_LOW + IMAGE_TOKENS

    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
        ],
    }
    bare = count_message_tokens([{"role": "assistant", "content": None}])
    assert count_message_tokens([call]) == bare + count_text_tokens("f") + count_text_tokens(
        '{"a": 1}'
    )


def test_request_count_adds_tool_definitions():
    request = {"messages": [{"role": "user", "content": "hi"}]}
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]

    assert count_request_tokens(request) == count_message_tokens(request["messages"])
    assert count_request_tokens({**request, "tools": tools}) > count_request_tokens(request)


def test_malformed_messages_do_not_raise():
    assert count_message_tokens([{"content": 5}, "nonsense", {"role": None}]) >= 3


def test_a_huge_text_is_encoded_only_up_to_the_cap_and_estimated_beyond(monkeypatch):
    import random

    from lumina.providers import tokens

    rng = random.Random(7)  # noqa: S311 (seeded test data, not a secret)
    words = ["alpha", "beta", "tokenisation", "of", "the", "and", "Ωmega", "数据", "x1"]
    text = " ".join(rng.choice(words) for _ in range(300_000))
    exact = len(tokens._encoder()(text))  # the whole text, encoded for reference
    real = tokens._encoder()
    encoded: list[int] = []
    monkeypatch.setattr(tokens, "_encode", lambda s: encoded.append(len(s)) or real(s))

    counted = count_text_tokens(text)
    messages = count_message_tokens([{"role": "user", "content": text}] * 3)

    assert len(text) > 10 * tokens.EXACT_CHARS  # else the cap would not be exercised
    assert max(encoded) <= tokens.EXACT_CHARS
    assert abs(counted - exact) / exact < 0.02
    # A request's messages share one allowance: three huge ones are not three times the work.
    assert sum(encoded) <= 2 * tokens.EXACT_CHARS + 64
    assert abs(messages - 3 * exact) / (3 * exact) < 0.02
