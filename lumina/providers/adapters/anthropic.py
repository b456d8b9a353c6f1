"""Anthropic's Messages API, mapped to and from OpenAI's Chat Completions shapes.

Requests: system messages, tools, tool results and images become Anthropic blocks.
Answers and stream events become OpenAI completions and ``chat.completion.chunk`` dicts.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from lumina.providers.adapters import http
from lumina.providers.adapters.base import UpstreamError, UpstreamProtocolError
from lumina.providers.adapters.sse import SSEParser, load_json
from lumina.providers.types import Completion, Embeddings, Endpoint, Usage

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; OpenAI does not
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_RETRYABLE_ERRORS = frozenset({"overloaded_error", "api_error", "rate_limit_error"})


def _headers(endpoint: Endpoint) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "anthropic-version": API_VERSION}
    if endpoint.api_key:
        headers["x-api-key"] = endpoint.api_key
    if endpoint.headers:
        headers.update(endpoint.headers)
    return headers


def _url(endpoint: Endpoint) -> str:
    return endpoint.base_url.rstrip("/") + "/v1/messages"


# -- requests ------------------------------------------------------------------------------


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return "" if content is None else str(content)


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url", "") if isinstance(image, dict) else str(image or "")
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";", 1)[0] or "image/png"
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


def _content_blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else [content]:
        if isinstance(part, str):
            blocks.append({"type": "text", "text": part})
        elif isinstance(part, dict):
            kind = part.get("type")
            if kind == "text":
                blocks.append({"type": "text", "text": part.get("text", "")})
            elif kind == "image_url":
                blocks.append(_image_block(part))
    return blocks


def _tool_use_block(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            parsed = orjson.loads(arguments) if arguments.strip() else {}
        except orjson.JSONDecodeError:
            parsed = {"arguments": arguments}  # keep what the model said, visibly
    else:
        parsed = arguments or {}
    return {
        "type": "tool_use",
        "id": call.get("id") or "",
        "name": function.get("name") or "",
        "input": parsed,
    }


def _tool_result_block(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.get("tool_call_id", "")}
    if isinstance(content, list):
        block["content"] = _content_blocks(content)
    else:
        block["content"] = _text_of(content)
    return block


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Add a turn, merging it into the previous one when the role repeats."""
    if messages and messages[-1]["role"] == role:
        previous = messages[-1]
        if isinstance(previous["content"], str):
            previous["content"] = [{"type": "text", "text": previous["content"]}]
        previous["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    mapped: dict[str, Any] | None
    if choice == "auto":
        mapped = {"type": "auto"}
    elif choice == "none":
        mapped = {"type": "none"}
    elif choice == "required":
        mapped = {"type": "any"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        mapped = {"type": "tool", "name": choice["function"].get("name", "")}
    else:
        mapped = None
    if parallel is False:
        mapped = mapped or {"type": "auto"}
        if mapped["type"] != "none":
            mapped["disable_parallel_tool_use"] = True
    return mapped


def to_anthropic(endpoint: Endpoint, request: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages body for an OpenAI Chat Completions body."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for message in request.get("messages") or []:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            text = _text_of(content)
            if text:
                system.append(text)
        elif role == "user":
            if isinstance(content, str) and not (messages and messages[-1]["role"] == "user"):
                messages.append({"role": "user", "content": content})
            else:
                _append(messages, "user", _content_blocks(content))
        elif role == "assistant":
            blocks = _content_blocks(content)
            blocks.extend(_tool_use_block(call) for call in message.get("tool_calls") or [])
            if blocks:
                _append(messages, "assistant", blocks)
        elif role == "tool":
            # Consecutive tool results become one user turn, as Anthropic expects.
            _append(messages, "user", [_tool_result_block(message)])
    body: dict[str, Any] = {
        "model": endpoint.model,
        "messages": messages,
        "max_tokens": request.get("max_completion_tokens")
        or request.get("max_tokens")
        or DEFAULT_MAX_TOKENS,
    }
    if system:
        body["system"] = "\n\n".join(system)
    stop = request.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    for key in ("temperature", "top_p"):
        if request.get(key) is not None:
            body[key] = request[key]
    tools = request.get("tools")
    if tools:
        body["tools"] = [
            {
                "name": tool["function"].get("name", ""),
                "description": tool["function"].get("description", ""),
                "input_schema": tool["function"].get("parameters")
                or {"type": "object", "properties": {}},
            }
            for tool in tools
            if isinstance(tool, dict) and isinstance(tool.get("function"), dict)
        ]
    choice = _tool_choice(request.get("tool_choice"), request.get("parallel_tool_calls"))
    if choice is not None and tools:
        body["tool_choice"] = choice
    user = request.get("user")
    if isinstance(user, str) and user:
        body["metadata"] = {"user_id": user}
    return body


# -- answers -------------------------------------------------------------------------------


def usage_from_anthropic(usage: dict[str, Any] | None) -> Usage | None:
    """Anthropic's ``input_tokens`` already exclude cache reads and writes: buckets map 1:1."""
    if not usage:
        return None
    return Usage(
        input_tokens=int(usage.get("input_tokens") or 0),
        cached_input_tokens=int(usage.get("cache_read_input_tokens") or 0),
        cache_write_tokens=int(usage.get("cache_creation_input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
    )


def from_anthropic(message: dict[str, Any]) -> Completion:
    """An OpenAI chat completion for an Anthropic Messages answer."""
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {
                        "name": block.get("name", ""),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if tool_calls:
        reply["tool_calls"] = tool_calls
    usage = usage_from_anthropic(message.get("usage"))
    body: dict[str, Any] = {
        "id": message.get("id", ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": reply,
                "finish_reason": FINISH_REASONS.get(message.get("stop_reason") or "", "stop"),
                "logprobs": None,
            }
        ],
    }
    if usage is not None:
        body["usage"] = usage.to_openai()
    return Completion(body=body, usage=usage)


def event_error(endpoint: Endpoint, error: Any) -> UpstreamError:
    """An ``UpstreamError`` for an ``error`` event in the middle of a stream."""
    kind = error.get("type") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return http.stream_error(
        endpoint,
        message or "no error message",
        provider_code=kind,
        retryable=kind in _RETRYABLE_ERRORS,
    )


class _StreamState:
    """Turns Anthropic stream events into OpenAI chunks, one event at a time."""

    __slots__ = ("created", "done", "finish_reason", "id", "model", "tool_index", "usage")

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.created = int(time.time())
        self.usage: dict[str, Any] = {}
        self.tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool index
        self.finish_reason: str | None = None
        self.done = False

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    def handle(self, endpoint: Endpoint, event: dict[str, Any]) -> dict[str, Any] | None:
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            delta_kind = delta.get("type")
            if delta_kind == "text_delta":
                return self.chunk({"content": delta.get("text", "")})
            if delta_kind == "input_json_delta":
                index = self.tool_index.get(event.get("index", -1))
                if index is None:
                    return None
                return self.chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "function": {"arguments": delta.get("partial_json", "")},
                            }
                        ]
                    }
                )
            return None  # thinking and signature deltas are not part of OpenAI's shape
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = message.get("id", "")
            self.model = message.get("model", "")
            self.usage.update(message.get("usage") or {})
            return self.chunk({"role": "assistant", "content": ""})
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = len(self.tool_index)
                self.tool_index[event.get("index", index)] = index
                return self.chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": block.get("id", ""),
                                "type": "function",
                                "function": {"name": block.get("name", ""), "arguments": ""},
                            }
                        ]
                    }
                )
            if block.get("type") == "text" and block.get("text"):
                return self.chunk({"content": block["text"]})
            return None
        if kind == "message_delta":
            # Counts here are cumulative: they replace what message_start said.
            usage = event.get("usage") or {}
            self.usage.update({k: v for k, v in usage.items() if v is not None})
            stop_reason = (event.get("delta") or {}).get("stop_reason")
            if stop_reason:
                self.finish_reason = FINISH_REASONS.get(stop_reason, "stop")
                return self.chunk({}, self.finish_reason)
            return None
        if kind == "message_stop":
            self.done = True
            usage = usage_from_anthropic(self.usage) or Usage()
            return {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": usage.to_openai(),
            }
        if kind == "error":
            raise event_error(endpoint, event.get("error"))
        return None  # ping, content_block_stop, and event types added later


class AnthropicAdapter:
    """Chat over Anthropic's Messages API; Anthropic serves no embeddings."""

    async def chat(self, endpoint: Endpoint, request: dict[str, Any]) -> Completion:
        body = to_anthropic(endpoint, request)
        response = await http.post(endpoint, _url(endpoint), orjson.dumps(body), _headers(endpoint))
        await http.check(response, endpoint)
        answer = await http.read_json(response, endpoint)
        if not isinstance(answer, dict) or answer.get("type") == "error":
            error = answer.get("error") if isinstance(answer, dict) else None
            if error:
                raise event_error(endpoint, error)
            raise UpstreamProtocolError(f"{endpoint.provider_name}'s answer is not a message")
        return from_anthropic(answer)

    async def stream(
        self, endpoint: Endpoint, request: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        body = to_anthropic(endpoint, request)
        body["stream"] = True
        response = await http.post(endpoint, _url(endpoint), orjson.dumps(body), _headers(endpoint))
        await http.check(response, endpoint)
        name = endpoint.provider_name
        import aiohttp  # loaded by adapters.http with the first provider call

        parser = SSEParser()
        state = _StreamState()
        try:
            async for raw in response.content.iter_any():
                for _, data in parser.feed(raw):
                    event = load_json(data, name)
                    if not isinstance(event, dict):
                        raise UpstreamProtocolError(f"{name} sent an event that is not an object")
                    chunk = state.handle(endpoint, event)
                    if chunk is not None:
                        yield chunk
                    if state.done:
                        break
                if state.done:
                    break
        except TimeoutError:
            raise http.timed_out(endpoint, "waiting for the next event") from None
        except aiohttp.ClientError as exc:
            raise http.stream_cut(endpoint, exc) from None
        finally:
            if not state.done:
                response.close()
        if not state.done:
            raise http.stream_cut(endpoint, "no message_stop before the connection ended")
        await http.finish(response)

    async def embed(self, endpoint: Endpoint, request: dict[str, Any]) -> Embeddings:
        raise UpstreamError(
            f"{endpoint.provider_name} (Anthropic) serves no embeddings",
            status=None,
            retryable=False,
            code="upstream_unsupported",
        )
