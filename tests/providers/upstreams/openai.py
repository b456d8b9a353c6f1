"""A loopback server speaking OpenAI's wire format, Azure OpenAI's routes included.

Chat Completions (JSON, or SSE ``data: …\\n\\n`` chunks ending with the usage chunk with
empty ``choices`` when ``stream_options.include_usage`` is set, then ``data: [DONE]``),
Embeddings (floats or base64), Models, and OpenAI's error bodies.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from typing import Any

import orjson
from aiohttp import web

from tests.providers.upstreams.base import (
    Script,
    UpstreamServer,
    cut_connection,
    fake_embedding,
    main,
)

BASE_PATH = "/v1"
SYSTEM_FINGERPRINT = "fp_loopback"
_ERRORS = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided: {key}."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model `{model}` does not exist or you do not have access to it.",
    ),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for {model} in organization org-loopback on requests per min "
        "(RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def error_body(status: int, *, model: str = "", key: str = "", message: str | None = None) -> bytes:
    kind, code, template = _ERRORS.get(status, ("server_error", None, "Upstream error."))
    return orjson.dumps(
        {
            "error": {
                "message": message or template.format(model=model, key=key),
                "type": kind,
                "param": None,
                "code": code,
            }
        }
    )


def _masked(key: str) -> str:
    return key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 8 else "***"


def _presented_key(request: web.Request, *, azure: bool) -> str:
    if azure:
        return request.headers.get("api-key", "")
    auth = request.headers.get("Authorization", "")
    return auth.removeprefix("Bearer ")


def _refuse(
    script: Script, request: web.Request, *, azure: bool, model: str
) -> web.Response | None:
    """The error answer this request gets, if any (auth first, then scripted failures)."""
    if script.expect_api_key is not None:
        key = _presented_key(request, azure=azure)
        if key != script.expect_api_key:
            shown = key if script.echo_key_in_errors else _masked(key)
            return web.Response(
                status=401, body=error_body(401, key=shown), content_type="application/json"
            )
    if script.take_failure():
        headers = {}
        if script.retry_after is not None:
            headers["Retry-After"] = script.retry_after
        if script.retry_after_ms is not None:
            headers["retry-after-ms"] = script.retry_after_ms
        return web.Response(
            status=script.fail_status,
            body=error_body(script.fail_status, model=model),
            content_type="application/json",
            headers=headers,
        )
    return None


def _usage(script: Script) -> dict[str, Any]:
    return {
        "prompt_tokens": script.prompt_tokens,
        "completion_tokens": script.completion_tokens,
        "total_tokens": script.prompt_tokens + script.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": script.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": script.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def build_app(server: UpstreamServer) -> web.Application:
    script = server.script

    async def chat(request: web.Request, *, azure: bool = False) -> web.StreamResponse:
        body = await server.record(request) or {}
        model = script.model or (request.match_info["deployment"] if azure else body.get("model"))
        model = model or "gpt-4o-mini"
        refused = _refuse(script, request, azure=azure, model=model)
        if refused is not None:
            return refused
        if script.hang:
            await server.wait_closing()
            raise web.HTTPServiceUnavailable()
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return await _stream(request, script, server, model, include_usage)
        return web.Response(body=_completion(script, model), content_type="application/json")

    async def azure_chat(request: web.Request) -> web.StreamResponse:
        if "api-version" not in request.query:
            return web.Response(
                status=404,
                body=orjson.dumps({"error": {"code": "404", "message": "Resource not found"}}),
                content_type="application/json",
            )
        return await chat(request, azure=True)

    async def embeddings(request: web.Request, *, azure: bool = False) -> web.Response:
        body = await server.record(request) or {}
        model = script.model or body.get("model") or "text-embedding-3-small"
        refused = _refuse(script, request, azure=azure, model=model)
        if refused is not None:
            return refused
        if script.hang:
            await server.wait_closing()
            raise web.HTTPServiceUnavailable()
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else list(texts or [])
        data = []
        for index, text in enumerate(texts):
            vector = fake_embedding(str(text), script.embedding_dims)
            if body.get("encoding_format") == "base64":
                embedding: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            else:
                embedding = vector
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        answer: dict[str, Any] = {"object": "list", "data": data, "model": model}
        if not script.omit_usage:
            answer["usage"] = {
                "prompt_tokens": script.prompt_tokens,
                "total_tokens": script.prompt_tokens,
            }
        return web.Response(body=orjson.dumps(answer), content_type="application/json")

    async def azure_embeddings(request: web.Request) -> web.Response:
        return await embeddings(request, azure=True)

    async def models(request: web.Request) -> web.Response:
        await server.record(request)
        return web.Response(
            body=orjson.dumps(
                {
                    "object": "list",
                    "data": [
                        {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "system"}
                    ],
                }
            ),
            content_type="application/json",
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/openai/deployments/{deployment}/chat/completions", azure_chat)
    app.router.add_post("/openai/deployments/{deployment}/embeddings", azure_embeddings)
    return app


def _completion(script: Script, model: str) -> bytes:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": script.answer,
        "refusal": None,
        "annotations": [],
    }
    finish_reason = "stop"
    calls = script.take_tool_calls()
    if calls:
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": "call_" + os.urandom(12).hex(),
                "type": "function",
                "function": {"name": name, "arguments": orjson.dumps(arguments).decode()},
            }
            for name, arguments in calls
        ]
        finish_reason = "tool_calls"
    answer: dict[str, Any] = {
        "id": "chatcmpl-" + os.urandom(12).hex(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        ],
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    if not script.omit_usage:
        answer["usage"] = _usage(script)
    return orjson.dumps(answer)


async def _stream(
    request: web.Request, script: Script, server: UpstreamServer, model: str, include_usage: bool
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    head = {
        "id": "chatcmpl-" + os.urandom(12).hex(),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    usage_field = {"usage": None} if include_usage else {}

    def event(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        chunk = {
            **head,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
            **usage_field,
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    if script.tool_call is not None:
        name, arguments = script.tool_call
        first = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_" + os.urandom(12).hex(),
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }
            ],
            "refusal": None,
        }
        text = orjson.dumps(arguments).decode()
        pieces = [text[: len(text) // 2], text[len(text) // 2 :]]
        deltas = [{"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in pieces]
        finish_reason = "tool_calls"
    else:
        first = {"role": "assistant", "content": "", "refusal": None}
        deltas = [{"content": piece} for piece in script.pieces()]
        finish_reason = "stop"

    await response.write(event(first))
    for sent, delta in enumerate(deltas):
        if sent == script.cut_after:
            cut_connection(request)
            return response
        if sent == script.stall_after:
            await server.wait_closing()
            return response
        if sent == script.malformed_after:
            await response.write(b'data: {"id": "chatcmpl-broken", "choices": [\n\n')
        if sent == script.error_after:
            error = {
                "message": "The server had an error while processing your request.",
                "type": script.error_type or "server_error",
                "param": None,
                "code": None,
            }
            await response.write(b"data: " + orjson.dumps({"error": error}) + b"\n\n")
            await response.write_eof()
            return response
        if sent and script.interval:
            await asyncio.sleep(script.interval)
        await response.write(event(delta))
    await response.write(event({}, finish_reason))
    if include_usage and not script.omit_usage:
        final = {**head, "choices": [], "usage": _usage(script)}
        await response.write(b"data: " + orjson.dumps(final) + b"\n\n")
    if not script.omit_end:
        await response.write(b"data: [DONE]\n\n")
    if script.linger:
        await asyncio.sleep(script.linger)
    if script.hold_body is not None:
        await asyncio.to_thread(script.hold_body.wait, 10)
    await response.write_eof()
    script.bodies_ended += 1
    return response


if __name__ == "__main__":
    main(build_app, "A loopback OpenAI-compatible upstream for benchmarks.")
