"""A loopback server for ``http`` tools: echo, text, large, slow, redirecting and failing routes."""

from __future__ import annotations

import orjson
from aiohttp import web

from tests.providers.upstreams.base import UpstreamServer


def build_app(server: UpstreamServer) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        body = await server.record(request)
        answer = {"method": request.method, "query": dict(request.query), "json": body}
        return web.Response(body=orjson.dumps(answer), content_type="application/json")

    async def text(request: web.Request) -> web.Response:
        await server.record(request)
        return web.Response(text="plain words")

    async def large(request: web.Request) -> web.Response:
        await server.record(request)
        return web.Response(body=b"x" * 200_000, content_type="text/plain")

    async def slow(request: web.Request) -> web.Response:
        await server.record(request)
        await server.wait_closing()
        return web.Response(text="late")

    async def redirect(request: web.Request) -> web.Response:
        await server.record(request)
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    async def fail(request: web.Request) -> web.Response:
        await server.record(request)
        return web.Response(status=500, text="internal trouble with secret sk-abc123")

    async def broken_json(request: web.Request) -> web.Response:
        await server.record(request)
        return web.Response(body=b'{"half":', content_type="application/json")

    app = web.Application()
    for route, handler in (
        ("/echo", echo),
        ("/text", text),
        ("/large", large),
        ("/slow", slow),
        ("/redirect", redirect),
        ("/fail", fail),
        ("/broken", broken_json),
    ):
        app.router.add_route("*", route, handler)
    return app
