"""A loopback server speaking Anthropic's Messages API.

``POST /v1/messages`` answers a message, or streams ``event: …\\ndata: …\\n\\n`` events:
message_start, content_block_start, ping, content_block_delta…, content_block_stop,
message_delta, message_stop; errors are ``{"type": "error", "error": {"type", "message"}}``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import orjson
from aiohttp import web

from tests.providers.upstreams.base import Script, UpstreamServer, cut_connection, main

API_VERSION = "2023-06-01"
_ERRORS = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "An unexpected error has occurred internal to Anthropic's systems."),
    529: ("overloaded_error", "Overloaded"),
}


def error_response(
    status: int, message: str | None = None, headers: dict | None = None
) -> web.Response:
    kind, default = _ERRORS.get(status, ("api_error", "Upstream error."))
    body = {
        "type": "error",
        "error": {"type": kind, "message": message or default},
        "request_id": "req_" + os.urandom(12).hex(),
    }
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        content_type="application/json",
        headers={"request-id": body["request_id"], **(headers or {})},
    )


def _usage(script: Script, *, output: int) -> dict[str, Any]:
    return {
        "input_tokens": script.prompt_tokens - script.cached_tokens - script.cache_write_tokens,
        "cache_creation_input_tokens": script.cache_write_tokens,
        "cache_read_input_tokens": script.cached_tokens,
        "output_tokens": output,
    }


def _refuse(script: Script, request: web.Request) -> web.Response | None:
    if "anthropic-version" not in request.headers:
        return error_response(400, "anthropic-version: header is required")
    key = request.headers.get("x-api-key")
    if script.expect_api_key is not None and key != script.expect_api_key:
        message = f"invalid x-api-key: {key}" if script.echo_key_in_errors else "invalid x-api-key"
        return error_response(401, message)
    if script.take_failure():
        headers = {}
        if script.retry_after is not None:
            headers["retry-after"] = script.retry_after
        return error_response(script.fail_status, headers=headers)
    return None


def build_app(server: UpstreamServer) -> web.Application:
    script = server.script

    async def messages(request: web.Request) -> web.StreamResponse:
        body = await server.record(request) or {}
        refused = _refuse(script, request)
        if refused is not None:
            return refused
        if "max_tokens" not in body:
            return error_response(400, "max_tokens: Field required")
        if script.hang:
            await server.wait_closing()
            raise web.HTTPServiceUnavailable()
        model = script.model or body.get("model") or "claude-sonnet-4-5"
        if body.get("stream"):
            return await _stream(request, script, server, model)
        return web.Response(
            body=orjson.dumps(_message(script, model)), content_type="application/json"
        )

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    return app


def _message(script: Script, model: str) -> dict[str, Any]:
    calls = script.take_tool_calls()
    if calls:
        content: list[dict[str, Any]] = [{"type": "text", "text": "Let me check."}]
        content += [
            {
                "type": "tool_use",
                "id": "toolu_" + os.urandom(12).hex(),
                "name": name,
                "input": arguments,
            }
            for name, arguments in calls
        ]
        stop_reason = "tool_use"
    else:
        content = [{"type": "text", "text": script.answer}]
        stop_reason = "end_turn"
    answer: dict[str, Any] = {
        "id": "msg_" + os.urandom(12).hex(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
    }
    answer["usage"] = _usage(script, output=script.completion_tokens)
    return answer


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def _stream(
    request: web.Request, script: Script, server: UpstreamServer, model: str
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_" + os.urandom(12).hex(),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(script, output=1),
        },
    }
    await response.write(_event("message_start", start))
    index = 0
    events: list[bytes] = []
    if script.tool_call is not None:
        name, arguments = script.tool_call
        await response.write(
            _event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
        )
        await response.write(_event("ping", {"type": "ping"}))
        events.append(
            _event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": "Let me check."},
                },
            )
        )
        events.append(_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        index = 1
        events.append(
            _event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {
                        "type": "tool_use",
                        "id": "toolu_" + os.urandom(12).hex(),
                        "name": name,
                        "input": {},
                    },
                },
            )
        )
        text = orjson.dumps(arguments).decode()
        for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
            events.append(
                _event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
            )
        stop_reason = "tool_use"
    else:
        await response.write(
            _event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
        )
        await response.write(_event("ping", {"type": "ping"}))
        for piece in script.pieces():
            events.append(
                _event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                )
            )
        stop_reason = "end_turn"

    for sent, data in enumerate(events):
        if sent == script.cut_after:
            cut_connection(request)
            return response
        if sent == script.stall_after:
            await server.wait_closing()
            return response
        if sent == script.malformed_after:
            await response.write(b"event: content_block_delta\ndata: {not json\n\n")
        if sent == script.error_after:
            error = {
                "type": "error",
                "error": {"type": script.error_type or "overloaded_error", "message": "Overloaded"},
            }
            await response.write(_event("error", error))
            await response.write_eof()
            return response
        if sent and script.interval:
            await asyncio.sleep(script.interval)
        await response.write(data)
    await response.write(
        _event("content_block_stop", {"type": "content_block_stop", "index": index})
    )
    delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
    }
    if not script.omit_usage:
        delta["usage"] = {"output_tokens": script.completion_tokens}
    await response.write(_event("message_delta", delta))
    if not script.omit_end:
        await response.write(_event("message_stop", {"type": "message_stop"}))
    if script.linger:
        await asyncio.sleep(script.linger)
    await response.write_eof()
    return response


if __name__ == "__main__":
    main(build_app, "A loopback Anthropic Messages upstream for benchmarks.")
