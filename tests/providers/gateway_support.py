"""A real ASGI server (uvicorn) running Lumina in a thread, for tests that use real clients.

The ``openai`` SDK and SSE tests talk HTTP to it exactly as users do. Tests using it
need ``transaction=True`` database access: the server's threads have their own
connections and see only committed rows.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn


class LiveAsgiServer:
    def __init__(self) -> None:
        from config.asgi import application

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            application,
            host="127.0.0.1",
            port=self.port,
            lifespan="off",
            log_level="warning",
            loop="asyncio",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="test-asgi-server", daemon=True)

    def _run(self) -> None:
        from lumina.providers.adapters.http import close_sessions

        async def main() -> None:
            await self.server.serve()
            await close_sessions()

        asyncio.run(main())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the test ASGI server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        from lumina.platform.asgi import ReusedThreadsASGIHandler

        self.server.should_exit = True
        self.thread.join(timeout=10)
        # Lifespan is off here: close the request threads' connections as shutdown would.
        ReusedThreadsASGIHandler.close_idle_threads()


@pytest.fixture
def asgi_server(transactional_db, settings) -> Iterator[LiveAsgiServer]:
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
    server = LiveAsgiServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def lumina_token(user, scopes=("*",)) -> str:
    """A real API token for ``user``, as ``security token create`` would print it."""
    from lumina.security.services.tokens import token_create
    from lumina.security.types import Actor

    return token_create(user_id=user.pk, actor=Actor.system("cli"), scopes=list(scopes)).secret


def usage_rows() -> list:
    from lumina.providers.models.usage import UsageRecord

    return list(UsageRecord.objects.order_by("occurred_at"))
