"""What running a trivial python tool costs: the sandbox beside a bare interpreter.

The tool is ``def main():\\n    return 1\\n`` with an empty argument object. Five paths:

* bare: ``<python3> -c "print(1)"`` in a subprocess, where ``<python3>`` is the sandbox's
  own interpreter (``launcher.base_interpreter()``; the ``python3`` on PATH may be a
  version-manager shim that adds its own start-up), the reference the target is set from;
* sandbox: ``lumina.tools.sandbox.run_python`` with the warm pool (the default
  ``LUMINA_SANDBOX_POOL_SIZE``);
* sandbox, cold: the same with a pool of 0, so each run starts bwrap and the interpreter;
* tools.api: the execution service as the API's callers reach it (arguments checked,
  authorised for a Developer, run, result checked, the execution row written, the
  ToolExecuted event published);
* HTTP: ``POST /api/v1/tools/execute`` to ``manage.py serve`` (uvicorn, as in production)
  with a Developer's API token, one keep-alive connection per caller.

Latency: the paths are interleaved call by call (``--runs`` rounds, after a warm-up), so
a change in the machine's load hits them alike; median and p95 in ms, and the sandbox's
overhead = its median minus the bare median. Throughput: a closed loop of 8 callers
(threads; ``--seconds`` each) per path: executions per second, failures, and CPU ms per
execution of this process and every process it started (sandboxes, the server; from a
cgroup of the benchmark's own; PostgreSQL's CPU is not in it). On a shared machine the CPU
figure is the one other work disturbs least. Under the table, where that CPU goes for the
two end-to-end paths: the process that serves the call (this one for tools.api, the
server for HTTP; its event loop apart), the sandboxes and the rest of the cgroup, and
the PostgreSQL backends connected to the benchmark's database.

Everything runs against a database of its own, ``lumina_bench_tools`` on the embedded
PostgreSQL (re-created, dropped at the end). The machine is shared with other work: the
load average is printed at the start and the end.

    .venv/bin/python benchmarks/tools.py              # about a minute
    .venv/bin/python benchmarks/tools.py --quick      # fewer rounds, 3 s loops
    git worktree add --detach /tmp/before <commit>    # then, HTTP before and after:
    .venv/bin/python benchmarks/tools.py --quick --compare /tmp/before
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import http.client
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._support import pgserver  # noqa: E402
from benchmarks._support.cgroup_cpu import CpuMeter  # noqa: E402
from benchmarks._support.processes import (  # noqa: E402
    ZERO_CPU,
    Cpu,
    Processes,
    clean_env,
    cpu_of,
    free_port,
    live_status,
    progress,
)
from benchmarks._support.stats import table  # noqa: E402

DATABASE = "lumina_bench_tools"
MASTER_KEYS = "1:" + base64.b64encode(secrets.token_bytes(32)).decode()
TOOL = "bench_trivial"
SOURCE = "def main():\n    return 1\n"
CALLERS = 8
START_TIMEOUT = 120.0
TARGET_OVERHEAD_MS = 15.0
TARGET_RATE = 50.0
HTTP = "HTTP: POST /api/v1/tools/execute"


def p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[18]


# --- Set-up ---------------------------------------------------------------------------------


def prepare_database(socket_dir: str) -> str:
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
    import logging

    import django

    django.setup()
    from django.core.management import call_command

    logging.disable(logging.WARNING)  # set-up and per-run log lines would mix with the tables
    call_command("migrate", interactive=False, verbosity=0)
    return database


def create_fixtures() -> tuple[Any, str]:
    """A Developer (actor and API token) and the trivial python tool."""
    from lumina.security.api import Actor
    from lumina.security.services import rbac
    from lumina.security.services.tokens import token_create
    from lumina.security.services.users import user_create
    from lumina.tools.services.registry import tool_create

    system = Actor.system("cli")
    user = user_create(email="tools-bench@bench.invalid", password=None)
    rbac.role_assignment_create(actor=system, role="Developer", user=str(user.pk))
    token = token_create(user_id=user.pk, actor=system, name="tools benchmark").secret
    tool_create(
        actor=system,
        name=TOOL,
        kind="python",
        source=SOURCE,
        description="Returns 1.",
        input_schema={"type": "object", "properties": {}, "additionalProperties": False},
        output_schema={"type": "integer"},
    )
    return Actor.for_user(user, mfa_verified=False), token


def postgres_cpu_s() -> float:
    """CPU seconds of the PostgreSQL backends connected to the benchmark's database."""
    import psutil

    total = 0.0
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(DATABASE in part for part in process.info["cmdline"] or ()):
                times = process.cpu_times()
                total += times.user + times.system
    return total


def start_lumina(
    processes: Processes, database: str, root: Path = ROOT, name: str = "lumina"
) -> tuple[int, int]:
    """``manage.py serve`` of the checkout at ``root``: its port and pid."""
    port = free_port()
    env = clean_env(root)
    env.update(
        DATABASE_URL=database,
        DJANGO_SETTINGS_MODULE="config.settings",
        LUMINA_ADMIN_PASSWORD=secrets.token_urlsafe(18),
        LUMINA_MASTER_KEYS=MASTER_KEYS,
        LUMINA_LOG_LEVEL="WARNING",
    )
    command = [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if root != ROOT:
        command.append("--no-migrate")  # the database is this checkout's
    process = processes.start(name, command, env, cwd=root)
    deadline = time.monotonic() + START_TIMEOUT
    while live_status(port) != 200:
        if process.poll() is not None:
            raise processes.failure(name, process, "exited before answering /health/live")
        if time.monotonic() > deadline:
            raise processes.failure(name, process, "never answered 200 on /health/live")
        time.sleep(0.05)
    return port, process.pid


# --- The paths --------------------------------------------------------------------------------


def bare_call(interpreter: str) -> Callable[[], bool]:
    def call() -> bool:
        done = subprocess.run([interpreter, "-c", "print(1)"], stdout=subprocess.PIPE, check=False)
        return done.returncode == 0 and done.stdout == b"1\n"

    return call


def sandbox_call(config: Any = None) -> Callable[[], bool]:
    from lumina.tools.sandbox import run_python
    from lumina.tools.types import Limits

    limits = Limits()

    def call() -> bool:
        return run_python(SOURCE, {}, limits, config=config).result == 1

    return call


def api_call(actor: Any) -> Callable[[], bool]:
    from django.db import connection

    from lumina.tools.api import tool_execute

    def call() -> bool:
        done = tool_execute(TOOL, {}, actor=actor)
        return str(done.status) == "succeeded" and done.result == 1

    # Called in each caller thread: the proxy resolves to that thread's own connection.
    call.thread_end = lambda: connection.close()  # type: ignore[attr-defined]
    return call


class HttpCaller:
    """One keep-alive connection per thread to ``POST /api/v1/tools/execute``."""

    def __init__(self, port: int, token: str, server_pid: int) -> None:
        self.port = port
        self.server_pid = server_pid
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.body = json.dumps({"tool": TOOL, "arguments": {}}).encode()
        self.local = threading.local()

    def __call__(self) -> bool:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = self.local.connection = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=30
            )
        try:
            connection.request("POST", "/api/v1/tools/execute", self.body, self.headers)
            answer = connection.getresponse()
            data = answer.read()
        except (OSError, http.client.HTTPException):
            self.local.connection = None
            connection.close()
            return False
        if answer.status != 200:
            return False
        body = json.loads(data)
        return body.get("status") == "succeeded" and body.get("result") == 1


# --- Measuring ----------------------------------------------------------------------------------


def interleaved(paths: dict[str, Callable[[], bool]], rounds: int, warmup: int) -> dict:
    samples: dict[str, list[float]] = {name: [] for name in paths}
    failures = dict.fromkeys(paths, 0)
    for index in range(warmup + rounds):
        for name, call in paths.items():
            started = time.perf_counter()
            ok = call()
            elapsed = (time.perf_counter() - started) * 1000
            if index >= warmup:
                samples[name].append(elapsed)
                failures[name] += not ok
            # Let the pool's refill thread start the next sandbox, as between requests.
            time.sleep(0.01)
    return {"samples": samples, "failures": failures}


@dataclasses.dataclass
class Loop:
    """One closed loop: executions/s, counts, and CPU ms per execution by where it went."""

    rate: float
    done: int
    failed: int
    cpu_ms: float  # the benchmark's cgroup: this process, the server, the sandboxes
    serving: Cpu = ZERO_CPU  # ms: the process that served the calls (event loop apart)
    postgres_ms: float = 0.0


def closed_loop(call: Callable[[], bool], seconds: float, meter: CpuMeter) -> Loop:
    done = [0] * CALLERS
    failed = [0] * CALLERS
    deadline = time.monotonic() + seconds

    def caller(slot: int) -> None:
        try:
            while time.monotonic() < deadline:
                if call():
                    done[slot] += 1
                else:
                    failed[slot] += 1
        finally:
            getattr(call, "thread_end", lambda: None)()

    serving_pid = getattr(call, "server_pid", os.getpid())
    started, cpu = time.monotonic(), meter.ms()
    serving, postgres = cpu_of(serving_pid), postgres_cpu_s()
    threads = [threading.Thread(target=caller, args=(slot,)) for slot in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    runs = max(1, sum(done) + sum(failed))
    spent = (meter.ms() - cpu) / runs
    served = cpu_of(serving_pid) - serving
    return Loop(
        rate=sum(done) / elapsed,
        done=sum(done),
        failed=sum(failed),
        cpu_ms=spent,
        serving=Cpu(served.loop * 1000 / runs, served.total * 1000 / runs),
        postgres_ms=(postgres_cpu_s() - postgres) * 1000 / runs,
    )


def compare(
    callers: dict[str, HttpCaller], rounds: int, seconds: float, meter: CpuMeter
) -> dict[str, list[Loop]]:
    """Closed loops over HTTP, alternating between two servers so load drift hits both."""
    loops: dict[str, list[Loop]] = {name: [] for name in callers}
    for index in range(rounds * len(callers)):
        name = list(callers)[(index + index // len(callers)) % len(callers)]  # ABBA
        progress(f"compare: round {len(loops[name]) + 1} of {rounds}: {name}")
        loops[name].append(closed_loop(callers[name], seconds, meter))
        time.sleep(1.0)
    return loops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="interleaved rounds")
    parser.add_argument("--seconds", type=float, default=8.0, help="closed-loop time per path")
    parser.add_argument("--quick", action="store_true", help="60 rounds, 3 s loops")
    parser.add_argument("--no-http", action="store_true", help="skip manage.py serve")
    parser.add_argument(
        "--compare",
        type=Path,
        help="another checkout (e.g. a git worktree of an older commit): its server, on the "
        "same database, alternates closed loops over HTTP with this one's",
    )
    parser.add_argument("--compare-rounds", type=int, default=6, help="loops per side")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.seconds = 60, 3.0
    load_at_start, started = os.getloadavg()[0], time.monotonic()
    logs = Path(tempfile.mkdtemp(prefix="lumina-tools-bench-"))
    processes = Processes(logs)
    socket_dir, held = None, False
    succeeded = False
    meter = CpuMeter()
    compared: HttpCaller | None = None
    comparison: dict[str, list[Loop]] = {}
    try:
        socket_dir, held = pgserver.attach()
        progress("preparing the database")
        database = prepare_database(socket_dir)
        actor, token = create_fixtures()

        from lumina.tools.sandbox.launcher import SandboxConfig, base_interpreter
        from lumina.tools.sandbox.runner import _config

        interpreter = base_interpreter()
        cold = SandboxConfig(**{**_config().__dict__, "pool_size": 0})
        paths: dict[str, Callable[[], bool]] = {
            f'bare: {interpreter} -c "print(1)"': bare_call(interpreter),
            "sandbox: run_python, warm pool": sandbox_call(),
            "sandbox: run_python, no pool (cold)": sandbox_call(cold),
            "tools.api: tool_execute (Developer)": api_call(actor),
        }
        if not args.no_http:
            progress("starting manage.py serve")
            port, server_pid = start_lumina(processes, database)
            paths[HTTP] = HttpCaller(port, token, server_pid)
            if args.compare:
                other, other_pid = start_lumina(processes, database, args.compare, "compared")
                compared = HttpCaller(other, token, other_pid)
        progress(f"latency: {args.runs} interleaved rounds")
        latency = interleaved(paths, args.runs, warmup=max(10, args.runs // 10))
        rates = {}
        for name, call in paths.items():
            progress(f"throughput: {CALLERS} callers for {args.seconds:g} s: {name}")
            rates[name] = closed_loop(call, args.seconds, meter)
            time.sleep(1.0)  # let the pool fill again before the next path
        if compared is not None:
            comparison = compare(
                {"this checkout": paths[HTTP], str(args.compare): compared},
                args.compare_rounds,
                args.seconds,
                meter,
            )
        succeeded = True
    finally:
        processes.stop_all()
        meter.close()
        if socket_dir is not None:
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
            pgserver.recreate_database(socket_dir, DATABASE, create=False)
            if held:
                pgserver.release()
        shutil.rmtree(logs, ignore_errors=True) if succeeded else progress(f"logs in {logs}")

    bare_name = next(iter(paths))
    bare_median = statistics.median(latency["samples"][bare_name])
    rows = []
    for name in paths:
        values = latency["samples"][name]
        median = statistics.median(values)
        loop = rates[name]
        overhead = "–" if name == bare_name else f"{median - bare_median:+.2f}"
        failures = latency["failures"][name] + loop.failed
        rows.append(
            (
                name,
                f"{median:.2f}",
                f"{p95(values):.2f}",
                overhead,
                f"{loop.rate:.1f}",
                f"{loop.cpu_ms:.1f}",
                str(failures),
            )
        )
    header = (
        "path",
        "median ms",
        "p95 ms",
        "vs bare (median)",
        f"exec/s, {CALLERS} callers",
        "CPU ms/exec" if meter.exact else "CPU ms/exec ~",
        "failures",
    )
    print(table(f"A trivial python tool ({args.runs} interleaved rounds)", header, rows))
    print()
    split = []
    for name in ("tools.api: tool_execute (Developer)", HTTP):
        if name not in rates:
            continue
        loop = rates[name]
        split.append(
            (
                name,
                f"{loop.serving.total:.1f}",
                f"{loop.serving.loop:.1f}" if name.startswith("HTTP") else "–",
                f"{loop.cpu_ms - loop.serving.total:.1f}",
                # The callers' own backends end with their threads, before they are read.
                f"{loop.postgres_ms:.1f}" if name.startswith("HTTP") else "–",
            )
        )
    print(
        table(
            f"Where the CPU of one execution goes, ms ({CALLERS} callers)",
            (
                "path",
                "serving process",
                "of it: event loop",
                "sandboxes + rest of cgroup",
                "PostgreSQL",
            ),
            split,
        )
    )
    warm = "sandbox: run_python, warm pool"
    http = HTTP
    if comparison:
        print()
        print(
            table(
                f"HTTP, alternating servers: medians of {args.compare_rounds} loops each "
                f"({CALLERS} callers, {args.seconds:g} s)",
                (
                    "checkout",
                    "exec/s",
                    "CPU ms/exec",
                    "server CPU ms/exec",
                    "of it: event loop",
                    "PostgreSQL",
                    "failures",
                ),
                [
                    (
                        name,
                        f"{statistics.median(loop.rate for loop in loops):.1f}",
                        f"{statistics.median(loop.cpu_ms for loop in loops):.1f}",
                        f"{statistics.median(loop.serving.total for loop in loops):.2f}",
                        f"{statistics.median(loop.serving.loop for loop in loops):.2f}",
                        f"{statistics.median(loop.postgres_ms for loop in loops):.2f}",
                        str(sum(loop.failed for loop in loops)),
                    )
                    for name, loops in comparison.items()
                ],
            )
        )
    warm_overhead = statistics.median(latency["samples"][warm]) - bare_median
    print()
    print(
        f"targets: sandbox overhead over bare <= {TARGET_OVERHEAD_MS:g} ms median "
        f"(measured {warm_overhead:+.2f} ms); >= {TARGET_RATE:g} exec/s with {CALLERS} "
        f"callers (sandbox {rates[warm].rate:.1f}, tools.api "
        f"{rates['tools.api: tool_execute (Developer)'].rate:.1f}"
        + (f", HTTP {rates[http].rate:.1f}" if http in rates else "")
        + ")"
    )
    print(
        f"{os.cpu_count()} CPUs; 1-min load average {load_at_start:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end; {time.monotonic() - started:.0f}s in all; "
        f"database {DATABASE} dropped"
    )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("tools benchmark interrupted; subprocesses stopped, database dropped")
    except RuntimeError as exc:
        sys.exit(f"tools benchmark failed: {exc}")
