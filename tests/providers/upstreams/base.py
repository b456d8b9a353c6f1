"""What every loopback upstream shares: the per-test script, request recording, the runner.

A server runs in a background thread on 127.0.0.1 (tests), or as its own process
(benchmarks: ``python -m tests.providers.upstreams.openai --port N --chunks 20
--interval 0.005``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import math
import struct
import threading
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict


@dataclasses.dataclass
class Script:
    """How the upstream behaves; tests change it between (or before) requests."""

    answer: str = "Hello from the loopback upstream!"
    chunks: int = 5  # content chunks the answer is split into when streamed
    interval: float = 0.0  # seconds between content chunks
    model: str | None = None  # the model named in answers; default: the requested one
    # Usage in OpenAI's terms: totals that include cached (and cache-write) input tokens and
    # reasoning output tokens. Each server renders them in its own wire format.
    prompt_tokens: int = 12
    completion_tokens: int = 7
    cached_tokens: int = 0
    cache_write_tokens: int = 0  # Anthropic only
    reasoning_tokens: int = 0  # OpenAI only
    omit_usage: bool = False
    omit_prompt_count: bool = False  # Ollama, when its cache held the whole prompt
    # Answer with a call of this tool instead of text: (name, arguments).
    tool_call: tuple[str, dict[str, Any]] | None = None
    # Function-calling turns: each whole (non-streamed) answer takes the next turn's calls,
    # several at once being parallel calls; an empty turn, or none left, answers with text.
    tool_turns: list[list[tuple[str, dict[str, Any]]]] = dataclasses.field(default_factory=list)
    # Faults.
    fail_next: int = 0  # the next N requests fail with fail_status
    fail_status: int = 500
    retry_after: str | None = None  # Retry-After header on failures
    retry_after_ms: str | None = None  # OpenAI's retry-after-ms header on failures
    hang: bool = False  # never answer (until the server stops)
    stall_after: int | None = None  # stop sending after K content chunks, keep the socket open
    cut_after: int | None = None  # close the connection after K content chunks
    malformed_after: int | None = None  # send malformed data after K content chunks
    error_after: int | None = None  # send the provider's mid-stream error after K chunks
    error_type: str | None = None  # the provider's error type for that mid-stream error
    omit_end: bool = False  # end the body cleanly but without the stream's end marker
    linger: float = 0.0  # seconds between the stream's end marker and the end of the body
    hold_body: threading.Event | None = None  # OpenAI streams end only once this is set
    bodies_ended: int = 0  # OpenAI streams sent to their very end (after any linger or hold)
    expect_api_key: str | None = None  # other keys get the provider's 401
    echo_key_in_errors: bool = False  # the 401 message repeats the key, unmasked
    embedding_dims: int = 8

    def take_tool_calls(self) -> list[tuple[str, dict[str, Any]]]:
        """The tool calls this answer makes (``tool_turns`` first, then ``tool_call``)."""
        if self.tool_turns:
            return list(self.tool_turns.pop(0))
        return [self.tool_call] if self.tool_call is not None else []

    def take_failure(self) -> bool:
        if self.fail_next > 0:
            self.fail_next -= 1
            return True
        return False

    def pieces(self) -> list[str]:
        """The answer in ``chunks`` slices (by characters) that join back to it exactly."""
        text = self.answer
        count = max(1, min(self.chunks, len(text) or 1))
        return [text[i * len(text) // count : (i + 1) * len(text) // count] for i in range(count)]

    @property
    def output_tokens(self) -> int:
        return self.completion_tokens - self.reasoning_tokens


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    body: Any  # parsed JSON, or None
    peer: Any = None  # the client's (host, port): equal ports mean a reused connection


def fake_embedding(text: str, dims: int) -> list[float]:
    """A deterministic unit vector for ``text``."""
    digest = b""
    counter = 0
    while len(digest) < dims * 4:
        digest += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    raw = [v / 2**31 - 1.0 for v in struct.unpack(f"<{dims}I", digest[: dims * 4])]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw]


class UpstreamServer:
    """An aiohttp app on 127.0.0.1 in a background thread, with its script and requests."""

    def __init__(
        self,
        build_app: Callable[[UpstreamServer], web.Application],
        *,
        base_path: str = "",
        script: Script | None = None,
        record: bool = True,
    ) -> None:
        self.script = script or Script()
        self.requests: list[RecordedRequest] = []
        self.record_requests = record
        self._build_app = build_app
        self._base_path = base_path
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closing: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The base URL an adapter is configured with."""
        return self.root + self._base_path

    async def record(self, request: web.Request) -> Any:
        """Parse (and remember) the request's JSON body."""
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        if self.record_requests:
            self.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    query=dict(request.query),
                    headers=CIMultiDict(request.headers),
                    body=body,
                    peer=request.transport.get_extra_info("peername")
                    if request.transport
                    else None,
                )
            )
        return body

    async def wait_closing(self) -> None:
        assert self.closing is not None
        await self.closing.wait()

    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.closing = asyncio.Event()
        self._runner = web.AppRunner(self._build_app(self), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=1024)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def shutdown(self) -> None:
        if self.closing is not None:
            self.closing.set()  # releases hanging handlers
        if self._runner is not None:
            await self._runner.cleanup()

    def start(self) -> UpstreamServer:
        ready = threading.Event()

        def run() -> None:
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.serve())
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self.shutdown())
            self.loop.close()

        self._thread = threading.Thread(target=run, name="loopback-upstream", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the loopback upstream did not start")
        return self

    def stop(self) -> None:
        if self.loop is not None and self._thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    def __enter__(self) -> UpstreamServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def cut_connection(request: web.Request) -> None:
    """Drop the TCP connection in the middle of the response, as a crashing server would."""
    transport = request.transport
    if transport is not None:
        transport.close()  # what was written still goes out first, then FIN


def main(build_app: Callable[[UpstreamServer], web.Application], description: str) -> None:
    """Command line for benchmarks: serve until interrupted, printing the URL first."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.005)
    parser.add_argument("--answer", default=None)
    options = parser.parse_args()
    script = Script(chunks=options.chunks, interval=options.interval)
    script.answer = options.answer or " ".join(f"word{i}" for i in range(options.chunks))
    # Recording would grow without bound over a benchmark, and nobody reads it here.
    server = UpstreamServer(build_app, script=script, record=False)

    async def run() -> None:
        await server.serve(options.host, options.port)
        print(f"listening on http://{options.host}:{server.port}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.shutdown()

    try:
        import uvloop  # a leaner loop keeps the mock from being the bottleneck

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(run())
