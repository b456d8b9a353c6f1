"""What the HTTP client library of the providers' adapters costs: aiohttp against httpx.

The measurement behind the adapters' choice of aiohttp. Each row is a child process of
its own on uvloop (``--client-child``) sending 2,000 non-streamed requests (``--quick``:
300) to the loopback OpenAI mock at concurrency 1 or 16, or a tenth as many streams at 16
read piece by piece as they arrive, after 50 warm-up requests. aiohttp goes through
``lumina.providers.adapters.http``'s own shared session (its connector, its per-request
timeouts); httpx's ``AsyncClient`` is pooled and configured alike, as is httpx2's (the
httpx fork the dev-only ``openai`` SDK installs), both also with ``sniffio`` hidden; a
library that is not installed gets a "not installed" row. CPU per request is the child's
user + system time (``time.process_time``, every thread) over the measured requests. One
line then names the adapters' client and what the others cost against it.

    .venv/bin/python benchmarks/http_clients.py            # about 15 s
    .venv/bin/python benchmarks/http_clients.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import importlib
import importlib.metadata
import importlib.util
import math
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Needs the repository root on sys.path.
from benchmarks._support.processes import (  # noqa: E402
    Processes,
    clean_env,
    machine_load,
    progress,
    run_loop,
)
from benchmarks._support.stats import num, table  # noqa: E402
from benchmarks._support.upstream import start_mock  # noqa: E402

CHUNKS = 20
CHUNK_INTERVAL = 0.005
UPSTREAM_MODEL = "bench-upstream-model"
UPSTREAM_KEY = "sk-bench-upstream-0123456789abcdef"
MESSAGES = [{"role": "user", "content": "Say hello"}]
LUMINA_CLIENT = "aiohttp"  # what lumina.providers.adapters.http sends through
CLIENT_REQUESTS, QUICK_CLIENT_REQUESTS = 2000, 300  # per client and concurrency; streams: /10
CLIENT_CONCURRENCY = (1, 16)
CLIENT_STREAM_CONCURRENCY = 16
CLIENT_WARMUP = 50
CLIENT_CHILD_TIMEOUT = 300.0


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
            progress(f"{kind.label}: {count} {mode} requests at concurrency {concurrency}")
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
            f"HTTP clients against the mock, a child process per row ({count:,} requests,"
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


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_CLIENT_REQUESTS} requests per measurement instead of {CLIENT_REQUESTS}",
    )
    # The child processes: one client, one mode, one concurrency each.
    child = parser.add_argument_group("client child (internal: the benchmark runs these itself)")
    child.add_argument("--client-child", metavar="MODULE", help="aiohttp, httpx or httpx2")
    child.add_argument("--hide-sniffio", action="store_true")
    child.add_argument("--url", help="the mock's root URL")
    child.add_argument("--mode", choices=("plain", "stream"), default="plain")
    child.add_argument("--concurrency", type=int, default=1)
    child.add_argument("--requests", type=int, default=CLIENT_REQUESTS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.client_child:
        client_child(args)
        return
    started = time.monotonic()
    logs = Path(tempfile.mkdtemp(prefix="lumina-clients-bench-"))
    processes = Processes(logs)
    try:
        mock_root, _mock = start_mock(processes, chunks=CHUNKS, interval=CHUNK_INTERVAL)
        progress(f"mock upstream at {mock_root}; measuring the HTTP clients")
        print(report_clients(measure_clients(mock_root, quick=args.quick), args.quick))
    finally:
        processes.stop_all()
        shutil.rmtree(logs, ignore_errors=True)
    print(f"\n{machine_load()} (shared by client and mock); {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("client benchmark interrupted")
    except RuntimeError as exc:
        sys.exit(f"client benchmark failed: {exc}")
