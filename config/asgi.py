"""ASGI entry point: HTTP (incl. SSE) and websockets from one process, plus lifespan.

The lifespan runs the hooks the contexts registered from their apps' ``ready()``
(``lumina.kernel.lifecycle``): the outbox relay, flushing usage, closing connections.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup(set_prefix=False)  # what get_asgi_application() does before its handler

from lumina.platform.asgi import BodyLimit, ReusedThreadsASGIHandler  # noqa: E402

# Django's handler, with request threads reused (and so their database connections): ADR 0027.
django_asgi = ReusedThreadsASGIHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from config.routing import websocket_urlpatterns  # noqa: E402
from lumina.kernel import lifecycle  # noqa: E402
from lumina.providers.http.gateway import Gateway  # noqa: E402
from lumina.security.consumers import browser_origin_validator, websocket_auth  # noqa: E402
from lumina.tools.http.mcp import McpEndpoint  # noqa: E402


class Lifespan:
    """Answers the ASGI lifespan protocol, which Django's handler does not speak, by running
    the contexts' start-up and shutdown hooks (``lumina.kernel.lifecycle``)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await lifecycle.startup(lifecycle.WEB)
                except Exception as error:
                    await send({"type": "lifespan.startup.failed", "message": repr(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await lifecycle.shutdown(lifecycle.WEB)
                await send({"type": "lifespan.shutdown.complete"})
                return


application = Lifespan(
    ProtocolTypeRouter(
        {
            # /v1 (the OpenAI-compatible gateway) bypasses Django's handler: ADR 0005;
            # so does /mcp (Lumina as an MCP server): ADR 0019.
            "http": BodyLimit(McpEndpoint(Gateway(ASGIStaticFilesHandler(django_asgi)))),
            "websocket": browser_origin_validator(websocket_auth(URLRouter(websocket_urlpatterns))),
        }
    )
)
