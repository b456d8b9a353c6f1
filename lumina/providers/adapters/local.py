"""The offline ``local`` provider: a deterministic development chat model and MiniLM embeddings.

``lumina-dev-chat`` is NOT a language model. It exists so the whole pipeline (selection,
streaming, tools, usage and cost) runs with no keys and no network, and it answers by a
fixed rule:

* the reply is ``"[lumina-dev-chat: a deterministic development model, not an LLM] You
  said: <text>"``, where ``<text>`` is the last user message's text (its text parts joined
  by spaces, trimmed), or ``(no user message)``;
* with ``response_format`` ``json_object`` or ``json_schema`` the reply is instead the JSON
  object ``{"model": "lumina-dev-chat", "note": "...not an LLM", "you_said": "<text>"}``
  (whatever the schema asks for);
* with ``tools`` and a ``tool_choice`` that forces a call (``"required"`` takes the first
  tool, ``{"type": "function", "function": {"name": N}}`` takes ``N``), the reply is one call
  of that function with arguments ``{}`` and ``finish_reason`` ``tool_calls``; otherwise tools
  are ignored;
* the reply is cut into pieces, each a word with the whitespace before it; a stream sends one
  piece per chunk. ``max_tokens`` (or ``max_completion_tokens``) keeps whole pieces while
  their token counts fit, and the finish reason is then ``length``;
* usage: prompt tokens are ``tokens.count_request_tokens`` of the request, completion tokens
  the sum of the kept pieces' ``tokens.count_text_tokens``. Stream and non-stream agree.

``all-MiniLM-L6-v2`` embeds text into 384 unit-length dimensions (``providers.local.minilm``),
off the event loop: the int8 ONNX build by default, or the fp32 model with
``LUMINA_LOCAL_EMBEDDINGS=fp32`` and the optional extra (``requirements-fp32.txt``).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from lumina.kernel.concurrency import run_cpu
from lumina.providers.adapters.base import UpstreamError
from lumina.providers.tokens import (
    INLINE_CHARS,
    count_request_tokens_async,
    count_text_tokens,
    text_chars,
)
from lumina.providers.types import Completion, Embeddings, Endpoint, Usage

DEV_CHAT_MODEL = "lumina-dev-chat"
EMBEDDING_MODEL = "all-MiniLM-L6-v2"
EMBEDDING_DIMENSIONS = 384
MAX_EMBEDDING_INPUTS = 2048  # OpenAI's own limit per request
LABEL = "[lumina-dev-chat: a deterministic development model, not an LLM]"
NO_USER_MESSAGE = "(no user message)"
_PIECES = re.compile(r"\s*\S+")

_executor: ThreadPoolExecutor | None = None


def _embedding_executor() -> ThreadPoolExecutor:
    # One worker: onnxruntime (or torch, for fp32) already spreads each batch over the
    # cores, so running two batches at once would only make both slower.
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lumina-minilm")
    return _executor


def _bad_request(endpoint: Endpoint, message: str, *, status: int = 400) -> UpstreamError:
    return UpstreamError(
        f"{endpoint.provider_name}: {message}",
        status=status,
        retryable=False,
        code="upstream_not_found" if status == 404 else "upstream_bad_request",
    )


def last_user_text(messages: Any) -> str:
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(
                    part.get("text", "")
                    for part in content
                    if isinstance(part, dict) and part.get("type") == "text"
                )
            text = content.strip() if isinstance(content, str) else ""
            return text or NO_USER_MESSAGE
    return NO_USER_MESSAGE


def _forced_tool(request: dict[str, Any]) -> str | None:
    tools = [
        tool["function"].get("name", "")
        for tool in request.get("tools") or []
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict)
    ]
    if not tools:
        return None
    choice = request.get("tool_choice")
    if choice == "required":
        return tools[0]
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return choice["function"].get("name") or tools[0]
    return None


def reply_text(request: dict[str, Any]) -> str:
    """The whole reply before ``max_tokens`` applies."""
    said = last_user_text(request.get("messages"))
    response_format = request.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    ):
        return orjson.dumps(
            {
                "model": DEV_CHAT_MODEL,
                "note": "a deterministic development model, not an LLM",
                "you_said": said,
            }
        ).decode()
    return f"{LABEL} You said: {said}"


def reply_pieces(request: dict[str, Any]) -> tuple[list[str], int, bool]:
    """The kept pieces, their tokens, and whether ``max_tokens`` cut the reply."""
    limit = request.get("max_completion_tokens") or request.get("max_tokens")
    pieces: list[str] = []
    tokens = 0
    for piece in _PIECES.findall(reply_text(request)):
        cost = count_text_tokens(piece)
        if limit and tokens + cost > limit:
            return pieces, tokens, True
        pieces.append(piece)
        tokens += cost
    return pieces, tokens, False


async def reply_pieces_async(request: dict[str, Any]) -> tuple[list[str], int, bool]:
    """``reply_pieces`` off the event loop when the reply is long (it echoes the prompt)."""
    if text_chars(request.get("messages")) <= INLINE_CHARS:
        return reply_pieces(request)
    return await run_cpu(reply_pieces, request)


class LocalAdapter:
    """Runs the ``local`` provider's models in this process."""

    def _check_chat(self, endpoint: Endpoint, request: dict[str, Any]) -> None:
        if endpoint.model != DEV_CHAT_MODEL:
            raise _bad_request(
                endpoint, f"the local provider has no chat model {endpoint.model!r}", status=404
            )
        if not isinstance(request.get("messages"), list):
            raise _bad_request(endpoint, "messages must be a list")

    async def chat(self, endpoint: Endpoint, request: dict[str, Any]) -> Completion:
        self._check_chat(endpoint, request)
        prompt = await count_request_tokens_async(request)
        tool = _forced_tool(request)
        if tool is not None:
            call = {
                "id": "call_" + os.urandom(12).hex(),
                "type": "function",
                "function": {"name": tool, "arguments": "{}"},
            }
            message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
            output = count_text_tokens(tool) + count_text_tokens("{}")
            finish_reason = "tool_calls"
        else:
            pieces, output, cut = await reply_pieces_async(request)
            message = {"role": "assistant", "content": "".join(pieces)}
            finish_reason = "length" if cut else "stop"
        usage = Usage(input_tokens=prompt, output_tokens=output)
        body = {
            "id": "chatcmpl-" + os.urandom(12).hex(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": DEV_CHAT_MODEL,
            "choices": [
                {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
            ],
            "usage": usage.to_openai(),
        }
        return Completion(body=body, usage=usage)

    async def stream(
        self, endpoint: Endpoint, request: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        self._check_chat(endpoint, request)
        chunk_id = "chatcmpl-" + os.urandom(12).hex()
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": DEV_CHAT_MODEL,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }

        prompt = await count_request_tokens_async(request)
        yield chunk({"role": "assistant", "content": ""})
        tool = _forced_tool(request)
        if tool is not None:
            call = {
                "index": 0,
                "id": "call_" + os.urandom(12).hex(),
                "type": "function",
                "function": {"name": tool, "arguments": "{}"},
            }
            yield chunk({"tool_calls": [call]})
            output = count_text_tokens(tool) + count_text_tokens("{}")
            finish_reason = "tool_calls"
        else:
            pieces, output, cut = await reply_pieces_async(request)
            for piece in pieces:
                yield chunk({"content": piece})
            finish_reason = "length" if cut else "stop"
        yield chunk({}, finish_reason)
        usage = Usage(input_tokens=prompt, output_tokens=output)
        final = chunk({})
        final["choices"] = []
        final["usage"] = usage.to_openai()
        yield final

    async def embed(self, endpoint: Endpoint, request: dict[str, Any]) -> Embeddings:
        if endpoint.model != EMBEDDING_MODEL:
            raise _bad_request(
                endpoint,
                f"the local provider has no embedding model {endpoint.model!r}",
                status=404,
            )
        texts = request.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise _bad_request(endpoint, "input must be a string or a list of strings")
        if not texts or len(texts) > MAX_EMBEDDING_INPUTS:
            raise _bad_request(endpoint, f"input must hold 1 to {MAX_EMBEDDING_INPUTS} texts")
        dimensions = request.get("dimensions")
        if dimensions is not None and dimensions != EMBEDDING_DIMENSIONS:
            raise _bad_request(endpoint, f"{EMBEDDING_MODEL} has {EMBEDDING_DIMENSIONS} dimensions")
        from lumina.providers.local import minilm

        loop = asyncio.get_running_loop()
        try:
            vectors, tokens = await loop.run_in_executor(_embedding_executor(), minilm.embed, texts)
        except minilm.LocalModelError as error:
            # A set-up fault (fp32 chosen without its extra, a wrong model file): another
            # candidate may still serve, and the message tells the operator what to install.
            raise UpstreamError(
                f"{endpoint.provider_name}: {error}",
                retryable=False,
                code="upstream_unavailable",
            ) from error
        if request.get("encoding_format") == "base64":
            little_endian = vectors.astype("<f4", copy=False)
            embeddings: list[Any] = [
                base64.b64encode(row.tobytes()).decode() for row in little_endian
            ]
        else:
            embeddings = vectors.tolist()
        usage = Usage(input_tokens=tokens)
        body = {
            "object": "list",
            "data": [
                {"object": "embedding", "index": index, "embedding": embedding}
                for index, embedding in enumerate(embeddings)
            ],
            "model": EMBEDDING_MODEL,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return Embeddings(body=body, usage=usage)
