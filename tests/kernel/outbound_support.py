"""A loopback HTTP server that records every request it gets: the attacker's server in the
outbound-guard tests, or a server that answers with a redirect or an error body."""

from __future__ import annotations

import dataclasses
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# A minimal OpenAI chat completion, for a recording server that plays a provider.
CHAT_COMPLETION = (
    b'{"id": "x", "object": "chat.completion", "created": 1, "model": "chat", "choices": '
    b'[{"index": 0, "message": {"role": "assistant", "content": "got it"}, '
    b'"finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}'
)


@dataclasses.dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class RecordingServer:
    """``with RecordingServer() as server:`` listens on ``host`` (127.0.0.1) at ``server.url``.

    Answers a path listed in ``routes`` with its ``(status, body)``, every other request
    with ``status``, ``headers`` and ``body`` (set them at will), and keeps what it
    received in ``received``.
    """

    def __init__(
        self,
        status: int = 200,
        body: bytes = b'{"ok": true}',
        headers: dict[str, str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {"Content-Type": "application/json"}
        self.routes: dict[str, tuple[int, bytes]] = {}
        self.received: list[Received] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                server.received.append(
                    Received(
                        method=self.command,
                        path=self.path,
                        headers=dict(self.headers.items()),
                        body=self.rfile.read(length) if length else b"",
                    )
                )
                status, body = server.routes.get(self.path, (server.status, server.body))
                self.send_response(status)
                for name, value in server.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer((host, 0), Handler)
        self.port = self._httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def authorizations(self) -> list[str]:
        """Every credential header it was sent, whatever its name."""
        names = ("authorization", "x-api-key", "api-key")
        return [v for r in self.received for k, v in r.headers.items() if k.lower() in names]
