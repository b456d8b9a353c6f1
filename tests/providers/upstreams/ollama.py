"""A loopback server speaking Ollama's native API.

``POST /api/chat`` answers one JSON object, or streams NDJSON lines ending with a
``"done": true`` line that carries ``prompt_eval_count`` and ``eval_count``;
``POST /api/embed`` answers ``{"embeddings": [[…]], "prompt_eval_count"}``; errors are
``{"error": "…"}``.
"""

from __future__ import annotations

import asyncio
import datetime
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

_ERRORS = {
    400: "invalid request",
    401: "unauthorized",
    404: 'model "{model}" not found, try pulling it first',
    429: "too many requests",
    500: "llama runner process has terminated: exit status 2",
    503: "server busy, please try again.  maximum pending requests exceeded",
}


def error_response(status: int, *, model: str = "", headers: dict | None = None) -> web.Response:
    message = _ERRORS.get(status, "upstream error").format(model=model)
    return web.Response(
        status=status,
        body=orjson.dumps({"error": message}),
        content_type="application/json",
        headers=headers or {},
    )


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def _refuse(script: Script, request: web.Request, model: str) -> web.Response | None:
    expected = script.expect_api_key
    if expected is not None and request.headers.get("Authorization") != f"Bearer {expected}":
        return error_response(401)
    if script.take_failure():
        headers = {}
        if script.retry_after is not None:
            headers["Retry-After"] = script.retry_after
        return error_response(script.fail_status, model=model, headers=headers)
    return None


def _done_line(script: Script, model: str, done_reason: str) -> dict[str, Any]:
    line: dict[str, Any] = {
        "model": model,
        "created_at": _now(),
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": done_reason,
        "total_duration": 4_883_583_458,
        "load_duration": 1_334_875,
        "prompt_eval_duration": 342_546_000,
        "eval_duration": 4_535_599_000,
    }
    if not script.omit_usage:
        if not script.omit_prompt_count:
            line["prompt_eval_count"] = script.prompt_tokens
        line["eval_count"] = script.completion_tokens
    return line


def build_app(server: UpstreamServer) -> web.Application:
    script = server.script

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await server.record(request) or {}
        model = script.model or body.get("model") or "llama3.2"
        refused = _refuse(script, request, model)
        if refused is not None:
            return refused
        if script.hang:
            await server.wait_closing()
            raise web.HTTPServiceUnavailable()
        if body.get("stream", True):  # Ollama streams unless told not to
            return await _stream(request, script, server, model)
        answer = _done_line(script, model, "stop")
        if script.tool_call is not None:
            name, arguments = script.tool_call
            answer["message"]["tool_calls"] = [{"function": {"name": name, "arguments": arguments}}]
        else:
            answer["message"]["content"] = script.answer
        return web.Response(body=orjson.dumps(answer), content_type="application/json")

    async def embed(request: web.Request) -> web.Response:
        body = await server.record(request) or {}
        model = script.model or body.get("model") or "all-minilm"
        refused = _refuse(script, request, model)
        if refused is not None:
            return refused
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else list(texts or [])
        answer: dict[str, Any] = {
            "model": model,
            "embeddings": [fake_embedding(str(t), script.embedding_dims) for t in texts],
            "total_duration": 14_143_917,
            "load_duration": 1_019_500,
        }
        if not script.omit_usage:
            answer["prompt_eval_count"] = script.prompt_tokens
        return web.Response(body=orjson.dumps(answer), content_type="application/json")

    app = web.Application()
    app.router.add_post("/api/chat", chat)
    app.router.add_post("/api/embed", embed)
    return app


async def _stream(
    request: web.Request, script: Script, server: UpstreamServer, model: str
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)

    def line(message: dict[str, Any]) -> bytes:
        return (
            orjson.dumps({"model": model, "created_at": _now(), "message": message, "done": False})
            + b"\n"
        )

    if script.tool_call is not None:
        name, arguments = script.tool_call
        lines = [
            line(
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"function": {"name": name, "arguments": arguments}}],
                }
            )
        ]
    else:
        lines = [line({"role": "assistant", "content": piece}) for piece in script.pieces()]
    for sent, data in enumerate(lines):
        if sent == script.cut_after:
            cut_connection(request)
            return response
        if sent == script.stall_after:
            await server.wait_closing()
            return response
        if sent == script.malformed_after:
            await response.write(b'{"model": "broken", "message": \n')
        if sent == script.error_after:
            await response.write(
                orjson.dumps({"error": "an error was encountered while running the model"}) + b"\n"
            )
            await response.write_eof()
            return response
        if sent and script.interval:
            await asyncio.sleep(script.interval)
        await response.write(data)
    if not script.omit_end:
        await response.write(orjson.dumps(_done_line(script, model, "stop")) + b"\n")
    if script.linger:
        await asyncio.sleep(script.linger)
    await response.write_eof()
    return response


if __name__ == "__main__":
    main(build_app, "A loopback Ollama upstream for benchmarks.")
