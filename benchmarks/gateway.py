"""What Lumina's ``/v1`` gateway adds to a chat request: latency, time to first token,
CPU per request and requests/s under load, and the web process's idle memory; without
Redis and with it (``REDIS_URL``), for this checkout and optionally another one.

Every phase talks to one loopback upstream, the OpenAI mock of the tests (its own
process on uvloop; streamed answers are 20 content chunks 5 ms apart, then the finish
chunk, the usage chunk with empty ``choices`` and ``[DONE]``). The same request is sent
two ways:

* direct: ``POST http://127.0.0.1:<mock>/v1/chat/completions`` naming the upstream
  model, no Lumina token;
* via Lumina: ``POST http://127.0.0.1:<lumina>/v1/chat/completions`` naming the
  deployment ``bench-model``, with ``Authorization: Bearer <Lumina API token>``.

Lumina runs as in production: ``manage.py serve`` (uvicorn on uvloop + httptools, one
process, the access log on) in a subprocess, against a database of its own,
``lumina_bench_gateway`` on the embedded PostgreSQL (re-created for every configuration,
dropped at the end), holding a Developer's token and one ``openai_compatible`` provider
whose base URL is the mock. A configuration is a checkout (this one, and each
``--compare PATH``, served by that checkout's own ``.venv``) without or with Redis
(``REDIS_URL=redis://127.0.0.1:6379/12``, flushed before and after). The configurations
run one after the other on the same mock and machine, so their figures compare. The
load generator is this process: aiohttp on uvloop, one keep-alive session per target.

For each configuration: the idle RSS of the web process, read 3 s after it first
answered ``/health/live`` (before any ``/v1`` request); then 50 requests to each target
warm everything up, and:

1. Concurrency 1, 300 interleaved pairs (one direct request, then the same via Lumina),
   not streamed: median and p99 latency per target, the added latency (median via −
   median direct), the median of Lumina's own ``X-Lumina-Overhead-Ms``.
2. Closed loops of 16 and 64 concurrent clients, 20 s per target (``--quick``: 5 s):
   requests/s, error rate, median/p99 latency, and CPU ms per request of Lumina's
   process (via) — its main thread (the event loop) and the others (the usage ledger
   writer with the outbox events and cost projection it writes, the outbox relay,
   worker threads) — of the mock and of the load generator. Lumina answers first and
   writes usage afterwards, so after each phase the benchmark waits until the database
   holds a usage row for every request answered via Lumina and no outbox event is
   pending, and counts that CPU too.
3. Streams (``stream_options.include_usage``), 100 interleaved pairs: time to the first
   chunk with content (TTFT), added TTFT, whole-stream time; and the forwarding check
   (as many events via Lumina as direct, every chunk of the same shape, the usage chunk
   last, chunks forwarded as they arrive).
4. Streams in a closed loop of 16 clients for 10 s (``--quick``: 5 s): streams/s and
   CPU ms per stream.

It ends with one table of every configuration side by side: added p50 latency, CPU-ms
per request at 16 and 64 clients, requests/s, TTFT, idle RSS, against the figures issue 9
started from and its targets. The machine is shared: the load average is printed at the
start and the end; CPU per request is the figure noise disturbs least.

    .venv/bin/python benchmarks/gateway.py                        # ~6 minutes: 2 configs
    .venv/bin/python benchmarks/gateway.py --quick                # ~3 minutes
    .venv/bin/python benchmarks/gateway.py --redis off            # without Redis only
    .venv/bin/python benchmarks/gateway.py --compare ../lumina-main   # 4 configs

The HTTP client libraries are compared in ``benchmarks/http_clients.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import functools
import itertools
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Needs the repository root on sys.path.
from benchmarks._support import pgserver  # noqa: E402
from benchmarks._support.processes import (  # noqa: E402
    ZERO_CPU,
    Cpu,
    Processes,
    clean_env,
    cpu_of,
    free_port,
    listener_pid,
    live_status,
    progress,
    rss_mib,
    run_loop,
)
from benchmarks._support.stats import median, ms, num, p99, table  # noqa: E402
from benchmarks._support.upstream import start_mock  # noqa: E402

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
IDLE_SECONDS = 2.0
# One keyring for this process and every Lumina under test: each checkout would otherwise
# use its own development keyring, and the provider key sealed here would not open there.
MASTER_KEYS = "1:" + base64.b64encode(secrets.token_bytes(32)).decode()
RSS_SETTLE_SECONDS = 3.0  # after the first /health/live answer, before reading the RSS
DRAIN_TIMEOUT = 180.0  # seconds Lumina may take to write a phase's usage after it
DRAIN_STALL = 5.0  # seconds without progress after which the missing rows are reported
MESSAGES = [{"role": "user", "content": "Say hello"}]
VOLATILE_KEYS = frozenset({"id", "created"})  # differ between any two answers
GAP_TOLERANCE_MS = 1.0  # chunk gap via Lumina vs direct, for "forwarded as they arrive"

# Where issue 9 started (the same method, one run, httpx clients) and what it asks for.
BASELINE = {"added_ms": 1.7, "ttft_ms": 2.1, "cpu_16": 1.9, "cpu_64": 2.60, "rps_64": 143,
            "rss_mib": 131}  # fmt: skip
PORTKEY = {"added_ms": 3.0, "ttft_ms": 29.6, "cpu_16": 1.9, "cpu_64": 1.95, "rps_64": 188,
           "rss_mib": 79}  # fmt: skip
TARGET_CPU_64_MS = 1.5
TARGET_RSS_MIB = 100.0


# --- Lumina under test ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Config:
    """One Lumina to measure: a checkout, with or without Redis."""

    root: Path
    redis: bool
    label: str

    @property
    def python(self) -> str:
        own = self.root / ".venv" / "bin" / "python"
        return str(own) if own.exists() else sys.executable


def start_lumina(processes: Processes, database: str, config: Config) -> tuple[int, int, Any]:
    """Start ``manage.py serve`` of ``config`` as production does; (port, web pid, process)."""
    port = free_port()
    env = clean_env(config.root)
    env.update(
        DATABASE_URL=database,
        DJANGO_SETTINGS_MODULE="config.settings",
        LUMINA_ADMIN_PASSWORD=secrets.token_urlsafe(18),
        LUMINA_MASTER_KEYS=MASTER_KEYS,
    )
    if config.redis:
        env["REDIS_URL"] = REDIS_URL
    command = [config.python, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)]
    name = f"lumina-{len(processes.started)}"
    process = processes.start(name, command, env, cwd=config.root)
    deadline = time.monotonic() + START_TIMEOUT
    while live_status(port) != 200:
        if process.poll() is not None:
            raise processes.failure(name, process, "exited before answering /health/live")
        if time.monotonic() > deadline:
            raise processes.failure(name, process, "never answered 200 on /health/live")
        time.sleep(0.05)
    return port, listener_pid(process, port), process


# --- Database and Django ------------------------------------------------------------------


def prepare_database(socket_dir: str) -> str:
    """Fresh database, Django set up in this process against it (once), migrated; its URL.

    This process never uses Redis: what it writes (the fixtures) goes to the database,
    which every Lumina under test reads.
    """
    from django.conf import settings

    if settings.configured:  # a previous configuration's connections
        from django.db import connections

        connections.close_all()
    pgserver.recreate_database(socket_dir, DATABASE)
    database = pgserver.database_url(socket_dir, DATABASE)
    for key in [key for key in os.environ if key.startswith(("LUMINA_", "CELERY_"))]:
        if key != "LUMINA_DATA_DIR":
            del os.environ[key]
    os.environ.pop("REDIS_URL", None)
    os.environ.update(
        DATABASE_URL=database,
        DJANGO_SETTINGS_MODULE="config.settings",
        LUMINA_MASTER_KEYS=MASTER_KEYS,
    )
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
        # Database 12 is this benchmark's own (the shared Redis's 0-9 belong to others).
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
    profile: Path | None = None  # collapsed py-spy stacks of the 64-client phase go here


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
            if bench.profile is not None and concurrency == max(CONCURRENCY):
                stack.enter_context(sampling(bench.lumina_pid, bench.profile, seconds))
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


@contextlib.contextmanager
def sampling(pid: int, output: Path, seconds: float):
    """py-spy samples ``pid`` (every thread, without pausing it) while the block runs.

    Only samples of a thread holding the GIL count: a thread waiting for it (the event loop
    after ``os.urandom`` or a socket call released it) spends no CPU, yet would be sampled
    in that call, and the profile would point at waits instead of work.
    """
    command = [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid)]
    command += ["--format", "raw", "--output", str(output), "--duration", f"{seconds:.0f}"]
    command += ["--nonblocking", "--threads", "--gil", "--rate", "250"]
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        try:
            recorder.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            recorder.kill()


def _frame_name(frame: str) -> str:
    """``function (.../package/module.py:123)`` as ``function (package/module.py)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(where.split('/')[-2:])})" if where else name


def profile_summary(path: Path, top: int = 30) -> str:
    """The functions the samples were in (self) and under (total), in % of samples."""
    own: dict[str, int] = {}
    under: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [_frame_name(frame) for frame in stack.split(";")[1:]]  # drop the thread
        samples = int(count)
        total += samples
        if frames:
            own[frames[-1]] = own.get(frames[-1], 0) + samples
        for frame in set(frames):
            under[frame] = under.get(frame, 0) + samples
    rows = [
        (name, f"{own.get(name, 0) * 100 / total:.1f}", f"{count * 100 / total:.1f}")
        for name, count in sorted(under.items(), key=lambda item: -item[1])[:top]
    ]
    return table(
        f"py-spy, 64 clients: {total:,} samples ({path})", ("function", "self %", "total %"), rows
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
    config: str = ""
    idle_rss_mib: float = math.nan


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


def report_summary(results: list[Results]) -> str:
    """Every configuration side by side, with the baseline and the targets of issue 9."""

    def row(label: str, values: dict[str, float], note: str = "") -> tuple[str, ...]:
        return (
            label,
            num(values["added_ms"]),
            num(values["ttft_ms"]),
            num(values["cpu_16"]),
            num(values["cpu_64"]),
            num(values["rps_16"], 0) if "rps_16" in values else "–",
            num(values["rps_64"], 0),
            num(values["rss_mib"], 1),
            note,
        )

    rows = []
    for result in results:
        figures = headline(result)
        met = []
        met.append("CPU≤1.5 " + ("met" if figures["cpu_64"] <= TARGET_CPU_64_MS else "NOT MET"))
        met.append("RSS≤100 " + ("met" if figures["rss_mib"] <= TARGET_RSS_MIB else "NOT MET"))
        rows.append(row(result.config, figures, ", ".join(met)))
    rows.append(row("issue 9 baseline (Lumina)", BASELINE, "as filed"))
    rows.append(row("Portkey (issue 9)", PORTKEY, "as filed"))
    return table(
        "Summary: /v1 chat completions via Lumina (medians of this run)",
        (
            "configuration",
            "added p50 ms",
            "added TTFT ms",
            "CPU ms/req @16",
            "CPU ms/req @64",
            "req/s @16",
            "req/s @64",
            "idle RSS MiB",
            "targets",
        ),
        rows,
    )


def headline(result: Results) -> dict[str, float]:
    """The summary's figures of one configuration."""
    figures: dict[str, float] = {
        "added_ms": (median(result.pairs.via) - median(result.pairs.direct)) * 1000,
        "rss_mib": result.idle_rss_mib,
    }
    ttft = [s.ttft() for s in result.streams.via if s.ok]
    ttft_direct = [s.ttft() for s in result.streams.direct if s.ok]
    figures["ttft_ms"] = (median(ttft) - median(ttft_direct)) * 1000
    for load in result.loads:
        if load.lumina is None:
            continue
        figures[f"cpu_{load.concurrency}"] = load.per_request_ms(load.lumina.overall.total)
        figures[f"rps_{load.concurrency}"] = len(load.latencies) / load.seconds
    return figures


def report(results: Results, quick: bool) -> str:
    loads = results.loads
    seconds = QUICK_LOAD_SECONDS if quick else LOAD_SECONDS
    stream_seconds = QUICK_STREAM_LOAD_SECONDS if quick else STREAM_LOAD_SECONDS
    streams_text, _added_ttft, gap_via, gap_direct = report_streams(results.streams)
    mismatches = (
        results.streams.chunk_mismatches
        + results.streams.event_count_mismatches
        + results.streams.usage_chunk_problems
    )
    gap_ok = abs(gap_via - gap_direct) * 1000 <= GAP_TOLERANCE_MS
    parts = [
        f"=== {results.config}: idle RSS of the web process {results.idle_rss_mib:.1f} MiB ===",
        *results.warm_notes,
        report_pairs(results.pairs),
        report_loads(f"2. Non-streamed, closed loop, {seconds:.0f} s per row", loads),
        streams_text,
        report_loads(
            f"4. Streams, closed loop, {stream_seconds:.0f} s per row",
            results.stream_loads,
            unit="stream",
        ),
        f"Lumina idle CPU (outbox relay, writer wake-ups): {results.idle_cpu_ms_per_s:.2f} ms/s;"
        f" chunk-format mismatches {mismatches}; chunks forwarded as they arrive:"
        f" {'yes' if gap_ok else 'NO'} (gap via {num(gap_via * 1000)} ms,"
        f" direct {num(gap_direct * 1000)} ms)",
    ]
    return "\n\n".join(parts)


# --- Main ---------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="5 s per closed-loop phase instead of 20 s / 10 s"
    )
    parser.add_argument(
        "--redis",
        choices=("both", "off", "on"),
        default="both",
        help=f"measure without Redis, with REDIS_URL={REDIS_URL} (flushed), or both (default)",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="another Lumina checkout (e.g. main's) to measure the same way, with its .venv",
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the subprocesses' logs and print where"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the web process with py-spy during the 64-client phase (threads holding"
        " the GIL); collapsed stacks (one file per configuration) go to DIR, and the top"
        " functions are printed",
    )
    return parser.parse_args()


def configurations(args: argparse.Namespace) -> list[Config]:
    modes = {"both": (False, True), "off": (False,), "on": (True,)}[args.redis]
    roots = [ROOT, *(path.resolve() for path in args.compare)]
    configs = []
    for root in roots:
        name = "this checkout" if root == ROOT else str(root)
        for redis in modes:
            configs.append(Config(root, redis, f"{name}, Redis {'on' if redis else 'off'}"))
    return configs


def measure(
    config: Config, processes: Processes, socket_dir: str, mock_root: str, mock_pid: int, *,
    quick: bool, profile: Path | None = None,
) -> Results:  # fmt: skip
    if config.redis:
        flush_redis()
    database = prepare_database(socket_dir)
    token = create_fixtures(mock_root)
    progress(f"{config.label}: starting manage.py serve")
    port, lumina_pid, process = start_lumina(processes, database, config)
    ledger = Ledger(socket_dir)
    try:
        time.sleep(RSS_SETTLE_SECONDS)
        idle_rss = rss_mib(lumina_pid)
        progress(f"{config.label}: serving on {port} (pid {lumina_pid}), idle RSS {idle_rss:.1f}")
        direct, via = make_targets(mock_root, port, token)
        bench = Bench(direct, via, lumina_pid, mock_pid, ledger, profile)
        results = run_loop(run_phases(bench, quick=quick))
    finally:
        processes.stop(process)
        ledger.close()
        if config.redis:
            with contextlib.suppress(RuntimeError):
                flush_redis()
    results.config = config.label
    results.idle_rss_mib = idle_rss
    return results


def main() -> None:
    args = parse_args()
    configs = configurations(args)
    load_at_start, started = os.getloadavg()[0], time.monotonic()
    logs = Path(tempfile.mkdtemp(prefix="lumina-gateway-bench-"))
    processes = Processes(logs)
    socket_dir, held = None, False
    measured: list[Results] = []
    succeeded = False
    try:
        mock_root, mock = start_mock(processes, chunks=CHUNKS, interval=CHUNK_INTERVAL)
        socket_dir, held = pgserver.attach()
        for number, config in enumerate(configs):
            profile = None
            if args.profile is not None:
                args.profile.mkdir(parents=True, exist_ok=True)
                profile = args.profile / f"config-{number}.txt"
            measured.append(measure(config, processes, socket_dir, mock_root, mock.pid,
                                    quick=args.quick, profile=profile))  # fmt: skip
            print(report(measured[-1], args.quick), end="\n\n", flush=True)
            if profile is not None and profile.exists():
                print(profile_summary(profile), end="\n\n", flush=True)
        succeeded = True
    finally:
        processes.stop_all()
        if socket_dir is not None:
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
            pgserver.recreate_database(socket_dir, DATABASE, create=False)
            if held:
                pgserver.release()
        if succeeded and not args.keep_logs:
            shutil.rmtree(logs, ignore_errors=True)
        elif not succeeded:
            progress(f"the subprocesses' logs are in {logs}")
    if measured:
        print(report_summary(measured), end="\n\n")
    print(
        f"{os.cpu_count()} CPUs (load generator, mock and Lumina share them);"
        f" 1-min load average {load_at_start:.1f} at start, {os.getloadavg()[0]:.1f} at end;"
        f" {time.monotonic() - started:.0f}s in all; database {DATABASE} dropped"
        + (f"; logs in {logs}" if args.keep_logs else "")
    )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("gateway benchmark interrupted; subprocesses stopped, database dropped")
    except RuntimeError as exc:
        sys.exit(f"gateway benchmark failed: {exc}")
