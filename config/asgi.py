"""ASGI entry point: HTTP (incl. SSE) and websockets from one process, plus lifespan.

Lifespan start-up runs the in-process outbox relay when that transport is in use.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.core.asgi import get_asgi_application

django_asgi = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from config.routing import websocket_urlpatterns  # noqa: E402
from lumina.platform.asgi import BodyLimit  # noqa: E402
from lumina.providers.http.gateway import Gateway  # noqa: E402
from lumina.security.consumers import websocket_auth  # noqa: E402


class Lifespan:
    """Answers the ASGI lifespan protocol, which Django's handler does not speak."""

    def __init__(self, app) -> None:
        self.app = app
        self.relay = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._drain()
                self._stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _start(self) -> None:
        if settings.LUMINA_EVENT_TRANSPORT.endswith("InProcessTransport"):
            from lumina.kernel.relay import OutboxRelay

            self.relay = OutboxRelay(interval=settings.LUMINA_OUTBOX_RELAY_INTERVAL)
            self.relay.start()

    async def _drain(self) -> None:
        """Close provider connections and write the usage still buffered."""
        from asgiref.sync import sync_to_async

        from lumina.providers.adapters.http import close_sessions
        from lumina.providers.services.usage import usage_writer_stop

        await close_sessions()
        await sync_to_async(usage_writer_stop, thread_sensitive=False)()

    def _stop(self) -> None:
        if self.relay is not None:
            self.relay.stop()


application = Lifespan(
    ProtocolTypeRouter(
        {
            # /v1 (the OpenAI-compatible gateway) bypasses Django's handler: ADR 0005.
            "http": BodyLimit(Gateway(ASGIStaticFilesHandler(django_asgi))),
            "websocket": AllowedHostsOriginValidator(
                websocket_auth(URLRouter(websocket_urlpatterns))
            ),
        }
    )
)
