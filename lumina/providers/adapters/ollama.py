"""Ollama's native API (``/api/chat`` with NDJSON streaming, ``/api/embed``), in OpenAI shapes."""

from __future__ import annotations

import array
import base64
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from lumina.providers.adapters import http
from lumina.providers.adapters.base import UpstreamError, UpstreamProtocolError
from lumina.providers.tokens import count_message_tokens
from lumina.providers.types import Completion, Embeddings, Endpoint, Usage

# OpenAI request fields that map onto Ollama's ``options``.
_OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}


def _headers(endpoint: Endpoint) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if endpoint.api_key:  # Ollama behind an authenticating proxy, or ollama.com
        headers["Authorization"] = "Bearer " + endpoint.api_key
    if endpoint.headers:
        headers.update(endpoint.headers)
    return headers


def _new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


def _unsupported(endpoint: Endpoint, what: str) -> UpstreamError:
    return UpstreamError(
        f"{endpoint.provider_name} (Ollama) cannot take {what}",
        retryable=False,
        code="upstream_bad_request",
    )


# -- requests ------------------------------------------------------------------------------


def _message(endpoint: Endpoint, message: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    role = message.get("role")
    mapped: dict[str, Any] = {"role": "system" if role == "developer" else role}
    content = message.get("content")
    if isinstance(content, list):
        texts: list[str] = []
        images: list[str] = []
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text":
                texts.append(part.get("text", ""))
            elif part.get("type") == "image_url":
                image = part.get("image_url")
                url = image.get("url", "") if isinstance(image, dict) else str(image or "")
                if not url.startswith("data:"):
                    raise _unsupported(endpoint, "image URLs, only data: URLs")
                images.append(url.partition(",")[2])
        mapped["content"] = "".join(texts)
        if images:
            mapped["images"] = images
    else:
        mapped["content"] = content if isinstance(content, str) else ""
    calls = message.get("tool_calls")
    if role == "assistant" and calls:
        mapped["tool_calls"] = []
        for call in calls:
            function = call.get("function") or {}
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                try:
                    arguments = orjson.loads(arguments) if arguments.strip() else {}
                except orjson.JSONDecodeError:
                    arguments = {}
            names[call.get("id", "")] = function.get("name", "")
            mapped["tool_calls"].append(
                {"function": {"name": function.get("name", ""), "arguments": arguments or {}}}
            )
    if role == "tool":
        name = names.get(message.get("tool_call_id", ""))
        if name:
            mapped["tool_name"] = name
    return mapped


def to_ollama(endpoint: Endpoint, request: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    """An Ollama ``/api/chat`` body for an OpenAI Chat Completions body."""
    names: dict[str, str] = {}  # tool call id -> function name, for the tool results
    body: dict[str, Any] = {
        "model": endpoint.model,
        "messages": [
            _message(endpoint, message, names)
            for message in request.get("messages") or []
            if isinstance(message, dict)
        ],
        "stream": stream,
    }
    options = {
        target: request[source]
        for source, target in _OPTIONS.items()
        if request.get(source) is not None
    }
    max_tokens = request.get("max_completion_tokens") or request.get("max_tokens")
    if max_tokens:
        options["num_predict"] = max_tokens
    stop = request.get("stop")
    if stop:
        options["stop"] = [stop] if isinstance(stop, str) else list(stop)
    if options:
        body["options"] = options
    if request.get("tools") and request.get("tool_choice") != "none":
        body["tools"] = request["tools"]  # Ollama takes OpenAI's tool definitions as they are
    response_format = request.get("response_format")
    if isinstance(response_format, dict):
        if response_format.get("type") == "json_object":
            body["format"] = "json"
        elif response_format.get("type") == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema")
            body["format"] = schema or "json"
    return body


# -- answers -------------------------------------------------------------------------------


def _tool_calls(calls: list[Any] | None) -> list[dict[str, Any]]:
    mapped = []
    for call in calls or []:
        function = call.get("function") or {}
        arguments = function.get("arguments")
        mapped.append(
            {
                "id": call.get("id") or _new_id("call_"),
                "type": "function",
                "function": {
                    "name": function.get("name", ""),
                    "arguments": arguments
                    if isinstance(arguments, str)
                    else orjson.dumps(arguments or {}).decode(),
                },
            }
        )
    return mapped


def _usage(answer: dict[str, Any], request: dict[str, Any]) -> Usage | None:
    prompt = answer.get("prompt_eval_count")
    output = answer.get("eval_count")
    if prompt is None and output is None:
        return None
    estimated = False
    if prompt is None:
        # Ollama leaves the prompt count out when the whole prompt came from its cache.
        prompt = count_message_tokens(request.get("messages") or [])
        estimated = True
    return Usage(input_tokens=int(prompt), output_tokens=int(output or 0), estimated=estimated)


def _finish_reason(answer: dict[str, Any], has_tool_calls: bool) -> str:
    if has_tool_calls:
        return "tool_calls"
    return "length" if answer.get("done_reason") == "length" else "stop"


def _error(endpoint: Endpoint, message: Any) -> UpstreamError:
    return http.stream_error(endpoint, message)


class OllamaAdapter:
    """Chat and embeddings over Ollama's own API."""

    async def chat(self, endpoint: Endpoint, request: dict[str, Any]) -> Completion:
        body = to_ollama(endpoint, request, stream=False)
        url = endpoint.base_url.rstrip("/") + "/api/chat"
        response = await http.post(endpoint, url, orjson.dumps(body), _headers(endpoint))
        await http.check(response, endpoint)
        answer = await http.read_json(response, endpoint)
        if not isinstance(answer, dict) or not isinstance(answer.get("message"), dict):
            raise UpstreamProtocolError(f"{endpoint.provider_name}'s answer has no message")
        message = answer["message"]
        tool_calls = _tool_calls(message.get("tool_calls"))
        reply: dict[str, Any] = {"role": "assistant", "content": message.get("content") or None}
        if tool_calls:
            reply["tool_calls"] = tool_calls
        usage = _usage(answer, request)
        completion: dict[str, Any] = {
            "id": _new_id("chatcmpl-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": answer.get("model", endpoint.model),
            "choices": [
                {
                    "index": 0,
                    "message": reply,
                    "finish_reason": _finish_reason(answer, bool(tool_calls)),
                    "logprobs": None,
                }
            ],
        }
        if usage is not None:
            completion["usage"] = usage.to_openai()
        return Completion(body=completion, usage=usage)

    async def stream(
        self, endpoint: Endpoint, request: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        body = to_ollama(endpoint, request, stream=True)
        url = endpoint.base_url.rstrip("/") + "/api/chat"
        response = await http.post(endpoint, url, orjson.dumps(body), _headers(endpoint))
        await http.check(response, endpoint)
        name = endpoint.provider_name
        chunk_id = _new_id("chatcmpl-")
        created = int(time.time())
        model = endpoint.model

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }

        import aiohttp  # loaded by adapters.http with the first provider call

        done = False
        started = False
        tools_seen = 0
        buffer = b""
        try:
            async for raw in response.content.iter_any():
                lines = (buffer + raw).split(b"\n") if buffer else raw.split(b"\n")
                buffer = lines.pop()
                for line in lines:
                    if not line.strip():
                        continue
                    try:
                        data = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        raise UpstreamProtocolError(
                            f"{name} sent a line that is not JSON: {line[:80]!r}"
                        ) from None
                    if not isinstance(data, dict):
                        raise UpstreamProtocolError(f"{name} sent a line that is not an object")
                    if "error" in data:
                        raise _error(endpoint, data["error"])
                    if not started:
                        started = True
                        yield chunk({"role": "assistant", "content": ""})
                    message = data.get("message") or {}
                    model = data.get("model") or model
                    if message.get("content"):
                        yield chunk({"content": message["content"]})
                    calls = _tool_calls(message.get("tool_calls"))
                    if calls:
                        yield chunk(
                            {
                                "tool_calls": [
                                    {"index": tools_seen + i, **call}
                                    for i, call in enumerate(calls)
                                ]
                            }
                        )
                        tools_seen += len(calls)
                    if data.get("done"):
                        done = True
                        yield chunk({}, _finish_reason(data, tools_seen > 0))
                        usage = _usage(data, request)
                        if usage is not None:
                            final = chunk({})
                            final["choices"] = []
                            final["usage"] = usage.to_openai()
                            yield final
                        break
                if done:
                    break
        except TimeoutError:
            raise http.timed_out(endpoint, "waiting for the next line") from None
        except aiohttp.ClientError as exc:
            raise http.stream_cut(endpoint, exc) from None
        finally:
            if not done:
                response.close()
        if not done:
            raise http.stream_cut(endpoint, "no final line (done: true) before the end")
        await http.finish(response)

    async def embed(self, endpoint: Endpoint, request: dict[str, Any]) -> Embeddings:
        texts = request.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise _unsupported(endpoint, "token arrays as embedding input, only text")
        body: dict[str, Any] = {"model": endpoint.model, "input": texts}
        if request.get("dimensions"):
            body["dimensions"] = request["dimensions"]
        url = endpoint.base_url.rstrip("/") + "/api/embed"
        response = await http.post(endpoint, url, orjson.dumps(body), _headers(endpoint))
        await http.check(response, endpoint)
        answer = await http.read_json(response, endpoint)
        if not isinstance(answer, dict) or not isinstance(answer.get("embeddings"), list):
            raise UpstreamProtocolError(f"{endpoint.provider_name}'s answer has no embeddings")
        as_base64 = request.get("encoding_format") == "base64"
        data = [
            {
                "object": "embedding",
                "index": index,
                "embedding": encode_base64(vector) if as_base64 else vector,
            }
            for index, vector in enumerate(answer["embeddings"])
        ]
        tokens = answer.get("prompt_eval_count")
        usage = Usage(input_tokens=int(tokens)) if tokens is not None else None
        body = {"object": "list", "data": data, "model": answer.get("model", endpoint.model)}
        body["usage"] = {
            "prompt_tokens": usage.input_tokens if usage else 0,
            "total_tokens": usage.input_tokens if usage else 0,
        }
        return Embeddings(body=body, usage=usage)


def encode_base64(vector: list[float]) -> str:
    """OpenAI's ``encoding_format: base64``: little-endian float32, base64-encoded."""
    values = array.array("f", vector)
    if sys.byteorder != "little":
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode()
