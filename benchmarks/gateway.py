"""What Lumina's ``/v1`` gateway adds to a chat request (latency, time to first token,
CPU), and what the HTTP client library its adapters send through costs.

Every phase talks to one loopback upstream, the OpenAI mock of the tests (``python -m
tests.providers.upstreams.openai``, its own process on uvloop; streamed answers are 20
content chunks 5 ms apart, then the finish chunk, the usage chunk with empty
``choices`` and ``[DONE]``).

0. The HTTP client libraries themselves, the measurement behind the adapters' choice
   of aiohttp (issue 4). Each row is a child process of its own on uvloop
   (``--client-child``) sending 2,000 non-streamed requests (``--quick``: 300) to the
   mock at concurrency 1 or 16, or a tenth as many streams at 16 read piece by piece as
   they arrive, after 50 warm-up requests. aiohttp goes through
   ``lumina.providers.adapters.http``'s own shared session (its connector, its
   per-request timeouts); httpx's ``AsyncClient`` is pooled and configured alike, as is
   httpx2's (the httpx fork the dev-only ``openai`` SDK installs), both also with
   ``sniffio`` hidden; a library that is not installed gets a "not installed" row. CPU
   per request is the child's user + system time (``time.process_time``, every thread)
   over the measured requests. One line then names the adapters' client and what the
   others cost against it.

Phases 1–4 compare the same request sent two ways:

* direct: ``POST http://127.0.0.1:<mock>/v1/chat/completions`` naming the upstream
  model, no Lumina token;
* via Lumina: ``POST http://127.0.0.1:<lumina>/v1/chat/completions`` naming the
  deployment ``bench-model``, with ``Authorization: Bearer <Lumina API token>``.

Lumina runs as in production: ``manage.py serve`` (uvicorn on uvloop + httptools,
one process, the access log on) in a subprocess, against a database of its own,
``lumina_bench_gateway`` on the embedded PostgreSQL (dropped and re-created at start,
dropped at the end), holding a Developer's token and one ``openai_compatible``
provider whose base URL is the mock. Redis is left out unless ``--redis`` is given
(then db 12, flushed before and after). The load generator is this process: aiohttp
on uvloop, one keep-alive session per target; 50 requests to each target warm
everything up first.

CPU is read with psutil before and after each phase and divided by the requests the
phase completed: Lumina's whole process (user + system time of every thread), split
into its main thread (uvicorn's event loop: the request path) and the others (the
usage ledger writer with the outbox events and cost projection it writes, the outbox
relay, ``sync_to_async`` workers). Lumina answers first and writes usage afterwards,
so after each phase the benchmark waits until the database holds a usage row for
every request answered via Lumina and no outbox event is pending, and counts that
CPU too ("usage backlog s" says how long it took).

1. Concurrency 1, 300 interleaved pairs (one direct request, then the same via
   Lumina), not streamed: median and p99 latency per target, the added latency
   (median via − median direct, p99 via − p99 direct), the median of Lumina's own
   ``X-Lumina-Overhead-Ms``.
2. Closed loops of 16 and 64 concurrent clients, 20 s per target (``--quick``: 5 s):
   requests/s, error rate (non-200 or exception), median/p99 latency, and CPU ms per
   request of Lumina's process (via), of the mock and of the load generator (both
   targets, for context: all three share the machine's CPUs).
3. Streams (``stream_options.include_usage``), 100 interleaved pairs: time to the
   first chunk with content (TTFT), added TTFT, whole-stream time; and the forwarding
   check: as many ``data:`` events via Lumina as direct, every chunk of the same
   shape as its direct twin (same keys in the same order, same values but ``id`` and
   ``created``), the last chunk before ``[DONE]`` the usage chunk with empty
   ``choices`` and the same usage, and the median gap between content chunks via
   Lumina (≈ the mock's 5 ms when chunks leave as they arrive).
4. Streams in a closed loop of 16 clients for 10 s (``--quick``: 5 s): streams/s and
   CPU ms per stream.

It ends with the figures side by side with the reference measurements and targets
of issue 4. Medians come from one run; run it on an otherwise idle machine (the
load average is printed), though CPU per request is the figure noise disturbs least.

    .venv/bin/python benchmarks/gateway.py                 # about 2¾ minutes
    .venv/bin/python benchmarks/gateway.py --quick         # about 1 minute
    .venv/bin/python benchmarks/gateway.py --only clients  # phase 0 alone, about 15 s
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import gc
import importlib
import importlib.metadata
import importlib.util
import itertools
import math
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import orjson
import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._support import pgserver  # noqa: E402 (needs the repository root on sys.path)

DATABASE = "lumina_bench_gateway"
REDIS_URL = "redis://127.0.0.1:6379/12"
DEPLOYMENT = "bench-model"
UPSTREAM_MODEL = "bench-upstream-model"
UPSTREAM_KEY = "sk-bench-upstream-0123456789abcdef"
CHUNKS = 20
CHUNK_INTERVAL = 0.005
WARMUP = 50
PAIRS = 300
STREAM_PAIRS = 100
CONCURRENCY = (16, 64)
LOAD_SECONDS, QUICK_LOAD_SECONDS = 20.0, 5.0
STREAM_LOAD_CONCURRENCY = 16
STREAM_LOAD_SECONDS, QUICK_STREAM_LOAD_SECONDS = 10.0, 5.0
REQUEST_TIMEOUT = 30.0
START_TIMEOUT = 120.0
MOCK_START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0
IDLE_SECONDS = 2.0
DRAIN_TIMEOUT = 180.0  # seconds Lumina may take to write a phase's usage after it
DRAIN_STALL = 5.0  # seconds without progress after which the missing rows are reported
MESSAGES = [{"role": "user", "content": "Say hello"}]
VOLATILE_KEYS = frozenset({"id", "created"})  # differ between any two answers

# Issue 4's reference figures (same harness; ``None``: not measured) and targets.
REFERENCES = {
    "LiteLLM proxy": {"added": 32.9, "ttft": 37.0, "cpu": 27.0},
    "Portkey": {"added": 6.1, "ttft": 33.0, "cpu": 5.1},
    "bare Django async proxy (aiohttp)": {"added": 1.7, "ttft": None, "cpu": 1.7},
}
TARGET_ADDED_MEDIAN_MS = 4.0
TARGET_ADDED_P99_MS = 15.0
TARGET_CPU_MS = 3.0
TARGET_ADDED_TTFT_MS = 5.0
GAP_TOLERANCE_MS = 1.0  # chunk gap via Lumina vs direct, for "forwarded as they arrive"
LUMINA_CLIENT = "aiohttp"  # what lumina.providers.adapters.http sends through
CLIENT_REQUESTS, QUICK_CLIENT_REQUESTS = 2000, 300  # per client and concurrency; streams: /10
CLIENT_CONCURRENCY = (1, 16)
CLIENT_STREAM_CONCURRENCY = 16
CLIENT_WARMUP = 50
CLIENT_CHILD_TIMEOUT = 300.0


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- Statistics and tables ----------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def p99(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else math.nan
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def ms(seconds: float) -> str:
    return "–" if math.isnan(seconds) else f"{seconds * 1000:,.2f}"


def num(value: float, digits: int = 2) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def table(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def render(cells: tuple[str, ...]) -> str:
        first, *rest = cells
        out = [first.ljust(widths[0])]
        out += [cell.rjust(width) for cell, width in zip(rest, widths[1:], strict=True)]
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([title, render(header), rule, *(render(row) for row in rows)])


# --- Processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env() -> dict[str, str]:
    """This environment without Lumina, Celery, database or Redis settings of the caller."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LUMINA_", "CELERY_"))
        and key not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    if os.environ.get("LUMINA_DATA_DIR"):
        env["LUMINA_DATA_DIR"] = os.environ["LUMINA_DATA_DIR"]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return env


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no output)"


class Processes:
    """The subprocesses this benchmark started; stopped (SIGINT, then SIGKILL) at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        out, err = self.logs / f"{name}.out", self.logs / f"{name}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            # Its own session: a Ctrl-C in the terminal reaches only this script, which
            # then stops the subprocesses in order.
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        self.started.append((name, process))
        return process

    def failure(self, name: str, process: subprocess.Popen, what: str) -> RuntimeError:
        return RuntimeError(
            f"{name} {what} (exit code {process.poll()}); the end of its stderr:\n"
            + tail(self.logs / f"{name}.err")
        )

    def stop_all(self) -> None:
        for _name, process in reversed(self.started):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for _name, process in reversed(self.started):
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.started.clear()


def start_mock(processes: Processes) -> tuple[str, subprocess.Popen]:
    """Start the loopback OpenAI upstream; return its root URL once it listens."""
    command = [sys.executable, "-m", "tests.providers.upstreams.openai", "--port", "0"]
    command += ["--chunks", str(CHUNKS), "--interval", str(CHUNK_INTERVAL)]
    process = processes.start("mock", command, clean_env())
    out = processes.logs / "mock.out"
    deadline = time.monotonic() + MOCK_START_TIMEOUT
    while time.monotonic() < deadline:
        for line in out.read_text(errors="replace").splitlines():
            if line.startswith("listening on "):
                return line.removeprefix("listening on ").strip(), process
        if process.poll() is not None:
            raise processes.failure("mock", process, "exited before listening")
        time.sleep(0.05)
    raise processes.failure("mock", process, f"did not listen within {MOCK_START_TIMEOUT:.0f}s")


def live_status(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=2) as answer:
            return answer.status
    except (OSError, urllib.error.URLError):
        return None


def listener_pid(process: subprocess.Popen, port: int) -> int:
    """The pid of the process listening on ``port``: ``serve`` or one of its children."""
    root = psutil.Process(process.pid)
    for candidate in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            for conn in candidate.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                    return candidate.pid
    raise RuntimeError(f"no process of manage.py serve (pid {process.pid}) listens on {port}")


def serve_command(port: int) -> list[str]:
    return [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)]


def start_lumina(processes: Processes, database: str, *, redis: bool) -> tuple[int, int]:
    """Start ``manage.py serve`` as production does; return (port, pid of the web process)."""
    port = free_port()
    env = clean_env()
    env.update(
        DATABASE_URL=database,
        DJANGO_SETTINGS_MODULE="config.settings",
        LUMINA_ADMIN_PASSWORD=secrets.token_urlsafe(18),
    )
    if redis:
        env["REDIS_URL"] = REDIS_URL
    process = processes.start("lumina", serve_command(port), env)
    deadline = time.monotonic() + START_TIMEOUT
    while live_status(port) != 200:
        if process.poll() is not None:
            raise processes.failure("lumina", process, "exited before answering /health/live")
        if time.monotonic() > deadline:
            raise processes.failure("lumina", process, "never answered 200 on /health/live")
        time.sleep(0.05)
    return port, listener_pid(process, port)


# --- Database and Django ------------------------------------------------------------------


def prepare_database(socket_dir: str, *, redis: bool) -> str:
    """Fresh database, Django set up in this process against it, migrated; its URL."""
    pgserver.recreate_database(socket_dir, DATABASE)
    database = pgserver.database_url(socket_dir, DATABASE)
    for key in [key for key in os.environ if key.startswith(("LUMINA_", "CELERY_"))]:
        if key != "LUMINA_DATA_DIR":
            del os.environ[key]
    os.environ.pop("REDIS_URL", None)
    os.environ.update(DATABASE_URL=database, DJANGO_SETTINGS_MODULE="config.settings")
    if redis:
        os.environ["REDIS_URL"] = REDIS_URL
    import django

    django.setup()
    import logging

    from django.core.management import call_command

    logging.disable(logging.INFO)  # this process's set-up log lines would mix with the tables

    call_command("migrate", interactive=False, verbosity=0)
    return database


def flush_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).flushdb()
    except redis.RedisError as exc:
        raise RuntimeError(f"--redis: Redis at {REDIS_URL} is not reachable ({exc})") from None


def create_fixtures(upstream_root: str) -> str:
    """A Developer with an API token, the upstream as a provider with ``bench-model``.

    Returns the token. Done before Lumina starts, so its caches start cold and fill
    during the warm-up, as in a fresh process.
    """
    from django.db import connections

    from lumina.providers.services.registry import deployment_create, provider_create
    from lumina.providers.types import Capability, ProviderKind
    from lumina.security.api import Actor
    from lumina.security.services import rbac
    from lumina.security.services.tokens import token_create
    from lumina.security.services.users import user_create

    system = Actor.system("cli")
    user = user_create(email="gateway-bench@bench.invalid", password=None)
    rbac.role_assignment_create(actor=system, role="Developer", user=str(user.pk))
    token = token_create(user_id=user.pk, actor=system, name="gateway benchmark").secret
    provider = provider_create(
        actor=system,
        name="bench-upstream",
        kind=ProviderKind.OPENAI_COMPATIBLE,
        base_url=f"{upstream_root}/v1",
        api_key=UPSTREAM_KEY,
    )
    deployment_create(
        actor=system,
        provider_id=provider.id,
        name=DEPLOYMENT,
        upstream_model=UPSTREAM_MODEL,
        capabilities=[Capability.CHAT, Capability.STREAMING],
        context_window=128_000,
        input_price="0.15",
        cached_input_price="0.075",
        output_price="0.60",
    )
    connections.close_all()  # the server has its own connections; this process needs none
    return token


# --- What Lumina spends, and what it still owes -------------------------------------------


@dataclasses.dataclass(frozen=True)
class Cpu:
    """CPU seconds of a process: its main thread (the event loop) and all threads."""

    loop: float
    total: float

    @property
    def background(self) -> float:
        return self.total - self.loop

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.loop - other.loop, self.total - other.total)


ZERO_CPU = Cpu(0.0, 0.0)


def cpu_of(pid: int) -> Cpu:
    process = psutil.Process(pid)
    times = process.cpu_times()  # every thread, finished ones included
    loop = next((t.user_time + t.system_time for t in process.threads() if t.id == pid), 0.0)
    return Cpu(loop, times.user + times.system)


class Ledger:
    """Lumina's deferred work, seen from its database: usage rows written, events pending.

    Lumina answers first and writes usage afterwards (a background thread, in batches,
    with the outbox events and the cost projection). Under load that work can fall
    behind the requests, so every phase waits for it and counts its CPU too.
    """

    def __init__(self, socket_dir: str) -> None:
        import psycopg

        from lumina.kernel.models import OutboxEvent
        from lumina.providers.models.usage import UsageRecord

        self.connection = psycopg.connect(
            host=socket_dir, dbname=DATABASE, user="postgres", autocommit=True
        )
        self.query = (
            f"SELECT (SELECT count(*) FROM {UsageRecord._meta.db_table}),"  # noqa: S608 (model names)
            f" (SELECT count(*) FROM {OutboxEvent._meta.db_table} WHERE status = 'pending')"
        )

    def counts(self) -> tuple[int, int]:
        row = self.connection.execute(self.query).fetchone()
        assert row is not None
        return row[0], row[1]

    async def drain(self, expected_rows: int) -> tuple[float, int]:
        """Wait until ``expected_rows`` usage rows exist and no event is pending.

        Returns the seconds waited and the rows still missing when the counts stopped
        moving for ``DRAIN_STALL`` seconds (a request that never reached Lumina).
        """
        started = time.perf_counter()
        last, moved_at = (-1, -1), started
        while True:
            rows, pending = self.counts()
            now = time.perf_counter()
            if rows >= expected_rows and pending == 0:
                return now - started, 0
            if (rows, pending) != last:
                last, moved_at = (rows, pending), now
            elif now - moved_at > DRAIN_STALL:
                return now - started, max(0, expected_rows - rows)
            if now - started > DRAIN_TIMEOUT:
                raise RuntimeError(
                    f"Lumina's usage ledger did not catch up in {DRAIN_TIMEOUT:.0f}s:"
                    f" {rows} of {expected_rows} rows, {pending} events pending"
                )
            await asyncio.sleep(0.05)

    def close(self) -> None:
        self.connection.close()


# --- Load generation ----------------------------------------------------------------------


@dataclasses.dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]
    body: bytes
    stream_body: bytes
    session: aiohttp.ClientSession | None = None
    answered: int = 0  # requests that got an HTTP response (each has a usage row via Lumina)


@dataclasses.dataclass
class Reply:
    ok: bool
    seconds: float
    overhead_ms: float | None = None
    body: bytes = b""
    error: str = ""


@dataclasses.dataclass
class Stream:
    ok: bool
    seconds: float
    events: list[tuple[float, bytes]]  # (seconds since the request, data) before [DONE]
    overhead_ms: float | None = None
    error: str = ""

    @functools.cached_property
    def chunks(self) -> list[Any]:
        return [orjson.loads(data) for _, data in self.events]

    def _content_times(self) -> list[float]:
        times = []
        for (at, _), chunk in zip(self.events, self.chunks, strict=True):
            choices = chunk.get("choices") or [{}]
            if (choices[0].get("delta") or {}).get("content"):
                times.append(at)
        return times

    def ttft(self) -> float:
        """Seconds to the first chunk carrying content."""
        times = self._content_times()
        return times[0] if times else math.nan

    def content_gaps(self) -> list[float]:
        return [later - earlier for earlier, later in itertools.pairwise(self._content_times())]


def make_targets(mock_root: str, lumina_port: int, token: str) -> tuple[Target, Target]:
    def bodies(model: str) -> tuple[bytes, bytes]:
        plain = {"model": model, "messages": MESSAGES}
        streamed = {**plain, "stream": True, "stream_options": {"include_usage": True}}
        return orjson.dumps(plain), orjson.dumps(streamed)

    json_headers = {"Content-Type": "application/json"}
    direct = Target(
        "direct", f"{mock_root}/v1/chat/completions", json_headers, *bodies(UPSTREAM_MODEL)
    )
    via = Target(
        "via Lumina",
        f"http://127.0.0.1:{lumina_port}/v1/chat/completions",
        {**json_headers, "Authorization": f"Bearer {token}"},
        *bodies(DEPLOYMENT),
    )
    return direct, via


def _overhead(response: aiohttp.ClientResponse) -> float | None:
    value = response.headers.get("X-Lumina-Overhead-Ms")
    return float(value) if value else None


async def request(target: Target, *, keep_body: bool = False) -> Reply:
    assert target.session is not None
    started = time.perf_counter()
    try:
        async with target.session.post(target.url, data=target.body, headers=target.headers) as r:
            target.answered += 1
            body = await r.read()
            seconds = time.perf_counter() - started
            if r.status != 200:
                return Reply(False, seconds, body=body, error=f"HTTP {r.status}: {body[:300]!r}")
            return Reply(True, seconds, _overhead(r), body if keep_body else b"")
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Reply(False, time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}")


async def stream(target: Target) -> Stream:
    assert target.session is not None
    started = time.perf_counter()
    events: list[tuple[float, bytes]] = []
    done = False
    try:
        async with target.session.post(
            target.url, data=target.stream_body, headers=target.headers
        ) as r:
            target.answered += 1
            if r.status != 200:
                body = await r.read()
                error = f"HTTP {r.status}: {body[:300]!r}"
                return Stream(False, time.perf_counter() - started, [], error=error)
            overhead = _overhead(r)
            async for line in r.content:
                if not line.startswith(b"data: "):
                    continue
                data = line[6:].strip()
                if data == b"[DONE]":
                    done = True
                    continue
                events.append((time.perf_counter() - started, data))
    except (aiohttp.ClientError, TimeoutError) as exc:
        error = f"{type(exc).__name__}: {exc}"
        return Stream(False, time.perf_counter() - started, events, error=error)
    seconds = time.perf_counter() - started
    if not done:
        return Stream(False, seconds, events, error="the stream ended without [DONE]")
    return Stream(True, seconds, events, overhead_ms=overhead)


def normalised(value: Any) -> Any:
    """A JSON value with ``id``/``created`` blanked, dicts as ordered pairs (key order counts)."""
    if isinstance(value, dict):
        return [
            (key, f"<{type(item).__name__}>" if key in VOLATILE_KEYS else normalised(item))
            for key, item in value.items()
        ]
    if isinstance(value, list):
        return [normalised(item) for item in value]
    return value


# --- Phases -------------------------------------------------------------------------------


@dataclasses.dataclass
class Bench:
    direct: Target
    via: Target
    lumina_pid: int
    mock_pid: int
    ledger: Ledger


@dataclasses.dataclass
class Spent:
    """What Lumina spent on a phase: CPU while it ran, and after it until its backlog was
    written (usage rows, events, projection), and how long that took."""

    during: Cpu = ZERO_CPU
    overall: Cpu = ZERO_CPU
    drain_seconds: float = 0.0
    missing_rows: int = 0


@contextlib.asynccontextmanager
async def lumina_spending(bench: Bench):
    spent = Spent()
    before = cpu_of(bench.lumina_pid)
    yield spent
    spent.during = cpu_of(bench.lumina_pid) - before
    spent.drain_seconds, spent.missing_rows = await bench.ledger.drain(bench.via.answered)
    spent.overall = cpu_of(bench.lumina_pid) - before


async def warm_up(bench: Bench) -> list[str]:
    """50 requests to each target (and a few streams); fail clearly if either refuses.

    Returns notes on differences between the two non-streamed answers.
    """
    notes: list[str] = []
    answers: dict[str, bytes] = {}
    for target in (bench.direct, bench.via):
        for number in range(WARMUP):
            reply = await request(target, keep_body=True)
            if not reply.ok:
                raise RuntimeError(
                    f"warm-up request {number + 1} {target.name} failed: {reply.error}"
                )
            answers[target.name] = reply.body
        for _ in range(5):
            streamed = await stream(target)
            if not streamed.ok:
                raise RuntimeError(f"warm-up stream {target.name} failed: {streamed.error}")
    plain, proxied = (orjson.loads(answers[t.name]) for t in (bench.direct, bench.via))
    if normalised(plain) != normalised(proxied):
        notes.append(
            "the non-streamed answer via Lumina differs from the direct one:\n"
            f"  direct: {answers[bench.direct.name][:400]!r}\n"
            f"  via:    {answers[bench.via.name][:400]!r}"
        )
    _, missing = await bench.ledger.drain(bench.via.answered)
    if missing:
        notes.append(f"{missing} warm-up request(s) via Lumina left no usage row")
    return notes


@dataclasses.dataclass
class Pairs:
    direct: list[float]
    via: list[float]
    overheads: list[float]
    errors: dict[str, int]
    spent: Spent


async def interleaved_pairs(bench: Bench, pairs: int) -> Pairs:
    direct, via = bench.direct, bench.via
    result = Pairs([], [], [], {direct.name: 0, via.name: 0}, Spent())
    async with lumina_spending(bench) as spent:
        for _ in range(pairs):
            for target, latencies in ((direct, result.direct), (via, result.via)):
                reply = await request(target)
                if not reply.ok:
                    result.errors[target.name] += 1
                    continue
                latencies.append(reply.seconds)
                if target is via and reply.overhead_ms is not None:
                    result.overheads.append(reply.overhead_ms)
    result.spent = spent
    return result


@dataclasses.dataclass
class Load:
    target: str
    concurrency: int
    seconds: float
    latencies: list[float]
    errors: int
    lumina: Spent | None  # via Lumina only
    mock_cpu: float
    client_cpu: float
    first_error: str = ""

    @property
    def finished(self) -> int:
        return len(self.latencies) + self.errors

    def per_request_ms(self, cpu: float) -> float:
        return cpu * 1000 / self.finished if self.finished else math.nan


async def closed_loop(
    bench: Bench,
    target: Target,
    send: Callable[[Target], Awaitable[Reply | Stream]],
    *,
    concurrency: int,
    seconds: float,
) -> Load:
    latencies: list[float] = []
    errors: list[str] = []

    async def client(deadline: float) -> None:
        while time.perf_counter() < deadline:
            reply = await send(target)
            if reply.ok:
                latencies.append(reply.seconds)
            else:
                errors.append(reply.error)

    me = psutil.Process()
    mock = psutil.Process(bench.mock_pid)
    mock_before, own_before = sum(mock.cpu_times()[:2]), sum(me.cpu_times()[:2])
    spent = None
    async with contextlib.AsyncExitStack() as stack:
        if target is bench.via:
            spent = await stack.enter_async_context(lumina_spending(bench))
        started = time.perf_counter()
        await asyncio.gather(*(client(started + seconds) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        mock_cpu = sum(mock.cpu_times()[:2]) - mock_before
        own_cpu = sum(me.cpu_times()[:2]) - own_before
    return Load(
        target.name,
        concurrency,
        elapsed,
        latencies,
        len(errors),
        spent,
        mock_cpu,
        own_cpu,
        errors[0] if errors else "",
    )


@dataclasses.dataclass
class Streams:
    direct: list[Stream]
    via: list[Stream]
    spent: Spent
    event_count_mismatches: int = 0
    chunk_mismatches: int = 0
    usage_chunk_problems: int = 0
    examples: list[str] = dataclasses.field(default_factory=list)


def compare_streams(result: Streams) -> None:
    for number, (plain, proxied) in enumerate(zip(result.direct, result.via, strict=True), 1):
        if not (plain.ok and proxied.ok):
            continue
        if len(plain.events) != len(proxied.events):
            result.event_count_mismatches += 1
            result.examples.append(
                f"pair {number}: {len(plain.events)} data events direct,"
                f" {len(proxied.events)} via Lumina"
            )
        plain_chunks, proxied_chunks = plain.chunks, proxied.chunks
        for index, (a, b) in enumerate(zip(plain_chunks, proxied_chunks, strict=False)):
            if normalised(a) != normalised(b):
                result.chunk_mismatches += 1
                if len(result.examples) < 5:
                    result.examples.append(
                        f"pair {number}, chunk {index}:\n  direct: {orjson.dumps(a)[:300]!r}"
                        f"\n  via:    {orjson.dumps(b)[:300]!r}"
                    )
        last = proxied_chunks[-1] if proxied_chunks else {}
        reference = plain_chunks[-1] if plain_chunks else {}
        if (
            last.get("choices") != []
            or not last.get("usage")
            or last.get("usage") != reference.get("usage")
            or normalised(last) != normalised(reference)
        ):
            result.usage_chunk_problems += 1
            if len(result.examples) < 5:
                result.examples.append(
                    f"pair {number}: last chunk via Lumina is not the usage chunk:"
                    f" {orjson.dumps(last)[:300]!r}"
                )


async def stream_pairs(bench: Bench, pairs: int) -> Streams:
    result = Streams([], [], Spent())
    async with lumina_spending(bench) as spent:
        for _ in range(pairs):
            result.direct.append(await stream(bench.direct))
            result.via.append(await stream(bench.via))
    result.spent = spent
    compare_streams(result)
    return result


@dataclasses.dataclass
class Results:
    warm_notes: list[str]
    idle_cpu_ms_per_s: float
    pairs: Pairs
    loads: list[Load]
    streams: Streams
    stream_loads: list[Load]


async def run_phases(bench: Bench, *, quick: bool) -> Results:
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with contextlib.AsyncExitStack() as stack:
        for target in (bench.direct, bench.via):
            # One connector per target, unlimited: the clients bound concurrency.
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
            target.session = await stack.enter_async_context(
                aiohttp.ClientSession(connector=connector, timeout=timeout)
            )
        progress(f"warming up: {WARMUP} requests and 5 streams per target")
        notes = await warm_up(bench)

        progress(f"measuring Lumina's idle CPU for {IDLE_SECONDS:.0f} s")
        before = cpu_of(bench.lumina_pid)
        await asyncio.sleep(IDLE_SECONDS)
        idle = (cpu_of(bench.lumina_pid) - before).total * 1000 / IDLE_SECONDS

        progress(f"1. concurrency 1: {PAIRS} interleaved pairs")
        pairs = await interleaved_pairs(bench, PAIRS)

        seconds = QUICK_LOAD_SECONDS if quick else LOAD_SECONDS
        loads = []
        for concurrency in CONCURRENCY:
            for target in (bench.direct, bench.via):
                progress(f"2. concurrency {concurrency}, {target.name}: {seconds:.0f} s")
                loads.append(
                    await closed_loop(
                        bench, target, request, concurrency=concurrency, seconds=seconds
                    )
                )

        progress(f"3. streams: {STREAM_PAIRS} interleaved pairs")
        streams = await stream_pairs(bench, STREAM_PAIRS)

        stream_seconds = QUICK_STREAM_LOAD_SECONDS if quick else STREAM_LOAD_SECONDS
        stream_loads = []
        for target in (bench.direct, bench.via):
            progress(
                f"4. streams at concurrency {STREAM_LOAD_CONCURRENCY}, {target.name}:"
                f" {stream_seconds:.0f} s"
            )
            stream_loads.append(
                await closed_loop(
                    bench,
                    target,
                    stream,
                    concurrency=STREAM_LOAD_CONCURRENCY,
                    seconds=stream_seconds,
                )
            )
    return Results(notes, idle, pairs, loads, streams, stream_loads)


# --- Report -------------------------------------------------------------------------------


@dataclasses.dataclass
class Verdicts:
    added_median: float
    added_p99: float
    cpu: float
    cpu_loop: float
    errors_c64: int
    added_ttft: float
    mismatches: int
    gap_via: float
    gap_direct: float


def per_request(cpu: float, requests: int) -> str:
    return num(cpu * 1000 / requests) if requests else "–"


def spent_note(spent: Spent, requests: int, unit: str = "request") -> str:
    overall = spent.overall
    note = (
        f"Lumina CPU per {unit}: {per_request(overall.total, requests)} ms"
        f" (event loop {per_request(overall.loop, requests)},"
        f" other threads {per_request(overall.background, requests)});"
        f" {per_request(spent.during.total, requests)} ms while the requests ran,"
        f" the rest writing their usage within {spent.drain_seconds:.2f} s after"
    )
    if spent.missing_rows:
        note += f"; {spent.missing_rows} usage row(s) never appeared"
    return note


def report_pairs(pairs: Pairs) -> str:
    rows = [
        (
            name,
            ms(median(latencies)),
            ms(p99(latencies)),
            str(len(latencies)),
            str(pairs.errors[name]),
        )
        for name, latencies in (("direct", pairs.direct), ("via Lumina", pairs.via))
    ]
    added_median = median(pairs.via) - median(pairs.direct)
    added_p99 = p99(pairs.via) - p99(pairs.direct)
    paired = [v - d for d, v in zip(pairs.direct, pairs.via, strict=False)]
    rows.append(("added (via − direct)", ms(added_median), ms(added_p99), "", ""))
    lines = [
        table(
            f"1. Non-streamed, concurrency 1, {PAIRS} interleaved pairs",
            ("target", "median ms", "p99 ms", "ok", "errors"),
            rows,
        ),
        f"median of the per-pair differences: {ms(median(paired))} ms;"
        f" Lumina's own X-Lumina-Overhead-Ms: median {num(median(pairs.overheads))} ms,"
        f" p99 {num(p99(pairs.overheads))} ms",
        spent_note(pairs.spent, PAIRS),
    ]
    return "\n".join(lines)


def report_loads(title: str, loads: list[Load], *, unit: str = "request") -> str:
    rows = []
    for load in loads:
        spent = load.lumina
        rows.append(
            (
                load.target,
                str(load.concurrency),
                f"{load.finished:,}",
                f"{len(load.latencies) / load.seconds:,.0f}",
                f"{load.errors / load.finished:.2%}" if load.finished else "–",
                ms(median(load.latencies)),
                ms(p99(load.latencies)),
                num(load.per_request_ms(spent.overall.total)) if spent else "–",
                num(load.per_request_ms(spent.overall.loop)) if spent else "–",
                num(load.per_request_ms(spent.overall.background)) if spent else "–",
                f"{spent.drain_seconds:.1f}" if spent else "–",
                num(load.per_request_ms(load.mock_cpu)),
                num(load.per_request_ms(load.client_cpu)),
            )
        )
    out = table(
        title,
        (
            "target",
            "clients",
            f"{unit}s",
            f"{unit}s/s",
            "error rate",
            "median ms",
            "p99 ms",
            f"Lumina CPU ms/{unit}",
            "event loop",
            "other threads",
            "usage backlog s",
            "mock CPU",
            "load gen CPU",
        ),
        rows,
    )
    out += (
        f"\nLumina CPU: all its threads, including the usage rows, events and projection it"
        f" wrote after the phase ('usage backlog s': how long that took); mock and load"
        f" generator CPU also in ms per {unit}"
    )
    for load in loads:
        if load.first_error:
            out += (
                f"\n{load.target} with {load.concurrency} clients, first error: {load.first_error}"
            )
        if load.lumina and load.lumina.missing_rows:
            out += (
                f"\n{load.target} with {load.concurrency} clients:"
                f" {load.lumina.missing_rows} usage row(s) never appeared"
            )
    return out


def report_streams(streams: Streams) -> tuple[str, float, float, float]:
    def ok(items: list[Stream]) -> list[Stream]:
        return [item for item in items if item.ok]

    direct, via = ok(streams.direct), ok(streams.via)
    ttft = {name: [s.ttft() for s in items] for name, items in (("direct", direct), ("via", via))}
    gaps = {
        name: [gap for s in items for gap in s.content_gaps()]
        for name, items in (("direct", direct), ("via", via))
    }
    rows = []
    for name, items, key in (("direct", direct, "direct"), ("via Lumina", via, "via")):
        rows.append(
            (
                name,
                ms(median(ttft[key])),
                ms(p99(ttft[key])),
                ms(median([s.seconds for s in items])),
                ms(median(gaps[key])),
                ms(p99(gaps[key])),
                num(median([len(s.events) for s in items]), 0),
                str(len(items)),
                str(STREAM_PAIRS - len(items)),
            )
        )
    added_ttft = median(ttft["via"]) - median(ttft["direct"])
    rows.append(
        (
            "added (via − direct)",
            ms(added_ttft),
            ms(p99(ttft["via"]) - p99(ttft["direct"])),
            ms(median([s.seconds for s in via]) - median([s.seconds for s in direct])),
            "",
            "",
            "",
            "",
            "",
        )
    )
    errors = [s.error for s in streams.direct + streams.via if not s.ok]
    lines = [
        table(
            f"3. Streams (include_usage), concurrency 1, {STREAM_PAIRS} interleaved pairs",
            (
                "target",
                "TTFT median ms",
                "TTFT p99 ms",
                "stream median ms",
                "chunk gap median ms",
                "chunk gap p99 ms",
                "data events",
                "ok",
                "errors",
            ),
            rows,
        ),
        "forwarding: "
        f"{streams.event_count_mismatches} stream(s) with a different number of data events;"
        f" {streams.chunk_mismatches} chunk-format mismatch(es);"
        f" {streams.usage_chunk_problems} stream(s) whose last chunk before [DONE] is not"
        " the direct usage chunk (empty choices, same keys, same usage)",
        "X-Lumina-Overhead-Ms on streams (to the first byte), median:"
        f" {num(median([s.overhead_ms for s in via if s.overhead_ms is not None]))} ms",
        spent_note(streams.spent, STREAM_PAIRS, "stream"),
    ]
    if errors:
        lines.append(f"first stream error: {errors[0]}")
    lines += streams.examples
    return "\n".join(lines), added_ttft, median(gaps["via"]), median(gaps["direct"])


def report_summary(verdicts: Verdicts) -> str:
    def mark(met: bool) -> str:
        return "met" if met else "NOT MET"

    refs = list(REFERENCES.values())

    def ref(key: str) -> tuple[str, ...]:
        return tuple("–" if r[key] is None else f"{r[key]:g}" for r in refs)

    rows = [
        (
            "added latency, median ms (c=1)",
            *ref("added"),
            f"≤ {TARGET_ADDED_MEDIAN_MS:g}",
            num(verdicts.added_median * 1000),
            mark(verdicts.added_median * 1000 <= TARGET_ADDED_MEDIAN_MS),
        ),
        (
            "added latency, p99 ms (c=1)",
            "–",
            "–",
            "–",
            f"≤ {TARGET_ADDED_P99_MS:g}",
            num(verdicts.added_p99 * 1000),
            mark(verdicts.added_p99 * 1000 <= TARGET_ADDED_P99_MS),
        ),
        (
            "CPU ms/request (worst of 16, 64 clients)",
            *ref("cpu"),
            f"≤ {TARGET_CPU_MS:g}",
            f"{num(verdicts.cpu)} (event loop {num(verdicts.cpu_loop)})",
            mark(verdicts.cpu <= TARGET_CPU_MS),
        ),
        (
            "errors with 64 clients",
            "–",
            "–",
            "–",
            "0",
            str(verdicts.errors_c64),
            mark(verdicts.errors_c64 == 0),
        ),
        (
            "added TTFT, median ms",
            *ref("ttft"),
            f"≤ {TARGET_ADDED_TTFT_MS:g}",
            num(verdicts.added_ttft * 1000),
            mark(verdicts.added_ttft * 1000 <= TARGET_ADDED_TTFT_MS),
        ),
        (
            "chunk-format mismatches",
            "usage chunk rewritten",
            "–",
            "–",
            "0",
            str(verdicts.mismatches),
            mark(verdicts.mismatches == 0),
        ),
        (
            "chunk gap via Lumina, median ms",
            "–",
            "–",
            "–",
            f"direct ± {GAP_TOLERANCE_MS:g}",
            f"{num(verdicts.gap_via * 1000)} (direct {num(verdicts.gap_direct * 1000)})",
            mark(abs(verdicts.gap_via - verdicts.gap_direct) * 1000 <= GAP_TOLERANCE_MS),
        ),
    ]
    return table(
        "Summary against issue 4 (references measured there with the same method)",
        ("figure", *REFERENCES, "target", "Lumina", "verdict"),
        rows,
    )


def report(results: Results, quick: bool) -> str:
    loads = results.loads
    seconds = QUICK_LOAD_SECONDS if quick else LOAD_SECONDS
    stream_seconds = QUICK_STREAM_LOAD_SECONDS if quick else STREAM_LOAD_SECONDS
    streams_text, added_ttft, gap_via, gap_direct = report_streams(results.streams)
    via_loads = [load for load in loads if load.lumina is not None]
    worst = max(via_loads, key=lambda load: load.per_request_ms(load.lumina.overall.total))
    verdicts = Verdicts(
        added_median=median(results.pairs.via) - median(results.pairs.direct),
        added_p99=p99(results.pairs.via) - p99(results.pairs.direct),
        cpu=worst.per_request_ms(worst.lumina.overall.total),
        cpu_loop=worst.per_request_ms(worst.lumina.overall.loop),
        errors_c64=sum(load.errors for load in via_loads if load.concurrency == 64),
        added_ttft=added_ttft,
        mismatches=results.streams.chunk_mismatches
        + results.streams.event_count_mismatches
        + results.streams.usage_chunk_problems,
        gap_via=gap_via,
        gap_direct=gap_direct,
    )
    parts = [
        *results.warm_notes,
        report_pairs(results.pairs),
        report_loads(f"2. Non-streamed, closed loop, {seconds:.0f} s per row", loads),
        streams_text,
        report_loads(
            f"4. Streams, closed loop, {stream_seconds:.0f} s per row",
            results.stream_loads,
            unit="stream",
        ),
        f"Lumina idle CPU (outbox relay, writer wake-ups): {results.idle_cpu_ms_per_s:.2f} ms/s",
        report_summary(verdicts),
    ]
    return "\n\n".join(parts)


# --- Phase 0: the HTTP client libraries themselves -----------------------------------------


@dataclasses.dataclass(frozen=True)
class ClientKind:
    """An async HTTP client library to measure, by its module name."""

    module: str
    hide_sniffio: bool = False  # measure it as if ``sniffio`` were not installed

    @property
    def label(self) -> str:
        return self.module + (" (no sniffio)" if self.hide_sniffio else "")

    def child_options(self) -> list[str]:
        return ["--client-child", self.module] + (["--hide-sniffio"] if self.hide_sniffio else [])


# httpx2 is the httpx fork (same API) that the dev-only ``openai`` SDK depends on; httpx
# itself is measured when installed.
CLIENTS = (
    ClientKind("aiohttp"),
    ClientKind("httpx"),
    ClientKind("httpx", hide_sniffio=True),
    ClientKind("httpx2"),
    ClientKind("httpx2", hide_sniffio=True),
)


@dataclasses.dataclass
class ClientRun:
    """One child process's measurement of one client in one mode."""

    client: str
    mode: str  # "plain" or "stream"
    concurrency: int
    requests: int = 0
    errors: int = 0
    cpu: float = math.nan  # seconds of the child's CPU (user + system, every thread)
    wall: float = math.nan
    version: str = ""
    unavailable: str = ""  # why there is no measurement ("not installed", a failure)
    first_error: str = ""

    @property
    def cpu_ms(self) -> float:
        return self.cpu * 1000 / self.requests if self.requests else math.nan

    @property
    def rate(self) -> float:
        return self.requests / self.wall if self.requests and self.wall else math.nan


def client_plan(quick: bool) -> list[tuple[str, int, int]]:
    """(mode, concurrency, requests) of each measurement of one client."""
    count = QUICK_CLIENT_REQUESTS if quick else CLIENT_REQUESTS
    plan = [("plain", concurrency, count) for concurrency in CLIENT_CONCURRENCY]
    return [*plan, ("stream", CLIENT_STREAM_CONCURRENCY, count // 10)]


Send = Callable[[], Awaitable[None]]
Close = Callable[[], Awaitable[None]]


def endpoint_for(mock_root: str) -> Any:
    """The ``Endpoint`` an adapter would be given for the mock (its timeouts, its key)."""
    import uuid

    from lumina.providers.types import Endpoint, ProviderKind

    return Endpoint(
        provider_id=uuid.uuid4(),
        provider_name="bench-upstream",
        kind=ProviderKind.OPENAI_COMPATIBLE,
        base_url=f"{mock_root}/v1",
        model=UPSTREAM_MODEL,
        api_key=UPSTREAM_KEY,
    )


def client_bodies() -> tuple[bytes, bytes]:
    plain = {"model": UPSTREAM_MODEL, "messages": MESSAGES}
    streamed = {**plain, "stream": True, "stream_options": {"include_usage": True}}
    return orjson.dumps(plain), orjson.dumps(streamed)


def client_headers(endpoint: Any) -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {endpoint.api_key}"}


def ended(tail: bytes) -> None:
    if b"data: [DONE]" not in tail:
        raise RuntimeError(f"the stream ended without [DONE] (last bytes {tail[-40:]!r})")


async def aiohttp_client(mock_root: str, stream: bool) -> tuple[Send, Close]:
    """Requests exactly as Lumina's adapters send them: ``adapters.http``'s shared session."""
    from lumina.providers.adapters import http

    endpoint = endpoint_for(mock_root)
    url, headers = f"{endpoint.base_url}/chat/completions", client_headers(endpoint)
    plain_body, stream_body = client_bodies()
    timeout = http.timeout_for(endpoint)

    async def plain() -> None:
        response = await http.session().post(url, data=plain_body, headers=headers, timeout=timeout)
        try:
            body = await response.read()
        finally:
            response.release()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")

    async def streamed() -> None:
        response = await http.session().post(
            url, data=stream_body, headers=headers, timeout=timeout
        )
        try:
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")
            tail = b""
            async for piece in response.content.iter_any():  # as the adapters read streams
                tail = (tail + piece)[-64:]
        finally:
            response.release()
        ended(tail)

    return (streamed if stream else plain), http.close_sessions


async def httpx_client(module: str, mock_root: str, stream: bool) -> tuple[Send, Close]:
    """One pooled ``AsyncClient`` configured like the adapters' aiohttp session."""
    httpx = importlib.import_module(module)
    endpoint = endpoint_for(mock_root)
    url, headers = f"{endpoint.base_url}/chat/completions", client_headers(endpoint)
    plain_body, stream_body = client_bodies()
    client = httpx.AsyncClient(
        limits=httpx.Limits(
            max_connections=None, max_keepalive_connections=None, keepalive_expiry=30.0
        ),
        timeout=httpx.Timeout(endpoint.read_timeout, connect=endpoint.connect_timeout),
        headers={"User-Agent": "lumina"},
        trust_env=False,
    )

    async def plain() -> None:
        response = await client.post(url, content=plain_body, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.content[:200]!r}")

    async def streamed() -> None:
        async with client.stream("POST", url, content=stream_body, headers=headers) as response:
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}")
            tail = b""
            async for piece in response.aiter_raw():
                tail = (tail + piece)[-64:]
        ended(tail)

    return (streamed if stream else plain), client.aclose


async def send_many(send: Send, count: int, concurrency: int) -> list[str]:
    """``count`` requests from ``concurrency`` closed-loop workers; the errors."""
    remaining = count
    errors: list[str] = []

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            try:
                await send()
            except Exception as exc:  # whatever a client raises counts as a failed request
                errors.append(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return errors


async def measure_client(options: argparse.Namespace) -> dict[str, Any]:
    """In the child: warm up, then time ``--requests`` requests and this process's CPU."""
    module, stream = options.client_child, options.mode == "stream"
    if module == "aiohttp":
        send, close = await aiohttp_client(options.url, stream)
    else:
        send, close = await httpx_client(module, options.url, stream)
    try:
        warm = await send_many(send, max(CLIENT_WARMUP, options.concurrency), options.concurrency)
        if warm:
            raise RuntimeError(f"warm-up failed: {warm[0]}")
        gc.collect()  # the warm-up's garbage is not the measured requests' cost
        cpu, wall = time.process_time(), time.perf_counter()
        errors = await send_many(send, options.requests, options.concurrency)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await close()
    return {
        "requests": options.requests,
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "cpu": cpu,
        "wall": wall,
        "version": importlib.metadata.version(module),
    }


def client_child(options: argparse.Namespace) -> None:
    """``--client-child MODULE``: one measurement, printed as JSON on stdout."""
    if options.hide_sniffio:
        if "sniffio" in sys.modules:
            sys.exit("--hide-sniffio: sniffio was imported before the client")
        sys.modules["sniffio"] = None  # type: ignore[assignment]  # `import sniffio` now fails
    try:
        importlib.import_module(options.client_child)
    except ImportError:
        print(orjson.dumps({"unavailable": "not installed"}).decode())
        return
    print(orjson.dumps(run_loop(measure_client(options))).decode())


def run_client_child(
    kind: ClientKind, mock_root: str, mode: str, concurrency: int, count: int
) -> ClientRun:
    """Run one measurement in a fresh child process (``--client-child``)."""
    run = ClientRun(kind.label, mode, concurrency)
    command = [sys.executable, str(Path(__file__).resolve()), *kind.child_options()]
    command += ["--url", mock_root, "--mode", mode, "--concurrency", str(concurrency)]
    command += ["--requests", str(count)]
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLIENT_CHILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        run.unavailable = f"no result within {CLIENT_CHILD_TIMEOUT:.0f}s"
        return run
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        run.unavailable = f"failed (exit code {done.returncode}): {last[:200]}"
        return run
    for key, value in orjson.loads(lines[-1]).items():
        setattr(run, key, value)
    return run


def measure_clients(mock_root: str, *, quick: bool) -> list[ClientRun]:
    runs = []
    for kind in CLIENTS:
        if importlib.util.find_spec(kind.module) is None:
            if not kind.hide_sniffio:  # one row says it is missing
                runs.append(ClientRun(kind.label, "", 0, unavailable="not installed"))
            continue
        for mode, concurrency, count in client_plan(quick):
            progress(f"0. {kind.label}: {count} {mode} requests at concurrency {concurrency}")
            runs.append(run_client_child(kind, mock_root, mode, concurrency, count))
    return runs


MODE_NAMES = {"plain": "non-streamed", "stream": f"streamed ({CHUNKS} chunks)"}


def report_clients(runs: list[ClientRun], quick: bool) -> str:
    rows = []
    for run in runs:
        client = f"{run.client} {run.version}".strip()
        mode = MODE_NAMES.get(run.mode, "–")
        if run.unavailable:
            concurrency = str(run.concurrency or "–")
            rows.append((client, mode, concurrency, run.unavailable, "", "", ""))
            continue
        rows.append(
            (
                client,
                mode,
                str(run.concurrency),
                f"{run.requests:,}",
                str(run.errors),
                num(run.cpu_ms, 3),
                f"{run.rate:,.0f}",
            )
        )
    count = QUICK_CLIENT_REQUESTS if quick else CLIENT_REQUESTS
    lines = [
        table(
            f"0. HTTP clients against the mock, a child process per row ({count:,} requests,"
            f" {count // 10:,} streams; CPU: the client process's user + system time)",
            ("client", "mode", "concurrency", "requests", "errors", "CPU ms/request", "requests/s"),
            rows,
        )
    ]
    lines += [
        f"{run.client}, {MODE_NAMES[run.mode]}, concurrency {run.concurrency}, first error:"
        f" {run.first_error}"
        for run in runs
        if run.first_error
    ]
    lines.append(client_verdict(runs))
    return "\n".join(lines)


def client_verdict(runs: list[ClientRun]) -> str:
    """The line naming the client Lumina's adapters use and what the others cost against it."""
    measured = {(r.client, r.mode, r.concurrency): r for r in runs if not r.unavailable}
    missing = {r.client: r.unavailable for r in runs if r.unavailable and not r.mode}
    labels = list(dict.fromkeys(run.client for run in runs))
    headline = ("plain", max(CLIENT_CONCURRENCY))
    base = measured.get((LUMINA_CLIENT, *headline))
    if base is None:
        return f"{LUMINA_CLIENT}, the client of Lumina's adapters, could not be measured"
    parts = [f"{LUMINA_CLIENT}: {base.cpu_ms:.2f} CPU-ms/request"]
    ratios, cheaper = [], []
    for label in labels:
        if label == LUMINA_CLIENT:
            continue
        run = measured.get((label, *headline))
        if run is None:
            parts.append(f"{label}: {missing.get(label, 'not measured')}")
            continue
        parts.append(f"{label}: {run.cpu_ms:.2f} ({run.cpu_ms / base.cpu_ms:.1f}×)")
        if run.cpu_ms < base.cpu_ms:
            cheaper.append(label)
        per_mode = []
        for mode, concurrency, _ in client_plan(quick=False):
            other = measured.get((label, mode, concurrency))
            ours = measured.get((LUMINA_CLIENT, mode, concurrency))
            if other and ours:
                ratio = other.cpu_ms / ours.cpu_ms
                per_mode.append(f"{ratio:.1f}× {MODE_NAMES[mode]} at {concurrency}")
        ratios.append(f"{label} {', '.join(per_mode)}")
    verdict = (
        f"NOT the cheapest here ({', '.join(cheaper)} spent less)"
        if cheaper
        else "the cheapest measured"
    )
    line = (
        f"{', '.join(parts)} (non-streamed, concurrency {headline[1]})"
        f" — Lumina's adapters use {LUMINA_CLIENT}, {verdict}"
    )
    if ratios:
        line += f"\nCPU per request against {LUMINA_CLIENT}: " + "; ".join(ratios)
    return line


# --- Main ---------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_CLIENT_REQUESTS} requests per client measurement instead of"
        f" {CLIENT_REQUESTS}; 5 s per closed-loop gateway phase instead of 20 s / 10 s",
    )
    parser.add_argument(
        "--only",
        choices=("clients", "gateway"),
        help="run only phase 0 (the HTTP client libraries) or only the gateway phases 1–4",
    )
    parser.add_argument(
        "--redis", action="store_true", help=f"give Lumina REDIS_URL={REDIS_URL} (flushed)"
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the subprocesses' logs and print where"
    )
    # Phase 0's child processes: one client, one mode, one concurrency each.
    child = parser.add_argument_group("client child (internal: phase 0 runs these itself)")
    child.add_argument("--client-child", metavar="MODULE", help="aiohttp, httpx or httpx2")
    child.add_argument("--hide-sniffio", action="store_true")
    child.add_argument("--url", help="the mock's root URL")
    child.add_argument("--mode", choices=("plain", "stream"), default="plain")
    child.add_argument("--concurrency", type=int, default=1)
    child.add_argument("--requests", type=int, default=CLIENT_REQUESTS)
    return parser.parse_args()


T = TypeVar("T")


def run_loop(coroutine: Awaitable[T]) -> T:
    try:
        import uvloop  # the lean loop keeps the load generator from being the bottleneck
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def main() -> None:
    args = parse_args()
    if args.client_child:
        client_child(args)
        return
    gateway, clients = args.only != "clients", args.only != "gateway"
    load_at_start, started = os.getloadavg()[0], time.monotonic()
    logs = Path(tempfile.mkdtemp(prefix="lumina-gateway-bench-"))
    processes = Processes(logs)
    socket_dir, held = None, False
    ledger: Ledger | None = None
    results: Results | None = None
    succeeded = False
    try:
        mock_root, mock = start_mock(processes)
        if clients:
            progress(f"mock upstream at {mock_root}; measuring the HTTP clients")
            # Printed now: the gateway phases take minutes and may fail on their own.
            print(report_clients(measure_clients(mock_root, quick=args.quick), args.quick))
            print(flush=True)
        if gateway:
            socket_dir, held = pgserver.attach()
            if args.redis:
                flush_redis()
            database = prepare_database(socket_dir, redis=args.redis)
            token = create_fixtures(mock_root)
            progress(f"mock upstream at {mock_root}; starting manage.py serve")
            port, lumina_pid = start_lumina(processes, database, redis=args.redis)
            progress(f"Lumina serving on 127.0.0.1:{port} (web process pid {lumina_pid})")
            direct, via = make_targets(mock_root, port, token)
            ledger = Ledger(socket_dir)
            bench = Bench(direct, via, lumina_pid, mock.pid, ledger)
            results = run_loop(run_phases(bench, quick=args.quick))
        succeeded = True
    finally:
        processes.stop_all()
        if ledger is not None:
            ledger.close()
        if socket_dir is not None:
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
            pgserver.recreate_database(socket_dir, DATABASE, create=False)
            if args.redis:
                with contextlib.suppress(RuntimeError):
                    flush_redis()
            if held:
                pgserver.release()
        if succeeded and not args.keep_logs:
            shutil.rmtree(logs, ignore_errors=True)
        elif not succeeded:
            progress(f"the subprocesses' logs are in {logs}")
    if results is not None:
        print(report(results, args.quick), end="\n\n")
    print(
        f"{os.cpu_count()} CPUs ("
        + ("load generator, mock and Lumina share them" if gateway else "shared by client and mock")
        + ");"
        f" 1-min load average {load_at_start:.1f} at start, {os.getloadavg()[0]:.1f} at end;"
        f" {time.monotonic() - started:.0f}s in all"
        + (
            f"; Redis {'on' if args.redis else 'off'}; database {DATABASE} dropped"
            if gateway
            else ""
        )
        + (f"; logs in {logs}" if args.keep_logs else "")
    )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("gateway benchmark interrupted; subprocesses stopped, database dropped")
    except RuntimeError as exc:
        sys.exit(f"gateway benchmark failed: {exc}")
