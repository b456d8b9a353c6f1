"""Realtime document sync: our /ws/documents/{id}/ beside pycrdt-websocket's bare server.

Stock Yjs clients (npm yjs + y-websocket over ws, tests/ui/yjs_client/driver.mjs, one
Node process) edit one document each run:

* 1 writer -> 5 readers, and 10 concurrent writers (each also reading the others);
* flood: every writer sends its updates as fast as it can; updates/s is updates written
  over the time until every client holds all of them;
* paced: writers send at a fixed rate; fan-out latency is, for each update and each
  client receiving it, its arrival time minus its send time (median and p99).

Servers, started here in the same run: pycrdt-websocket's ``ASGIServer`` on uvicorn
(in-memory rooms, nothing stored: the baseline), ``manage.py serve`` (every update
appended to PostgreSQL before it is relayed), and two ``manage.py serve`` processes on
one Redis (channels-redis), clients spread over both. Targets: our throughput at least
1/1.5 of the bare server's; p99 fan-out <= 50 ms on one process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._support import pgserver  # noqa: E402
from benchmarks._support.processes import (  # noqa: E402
    Processes,
    clean_env,
    free_port,
    live_status,
    progress,
)
from benchmarks._support.stats import median, p99, table  # noqa: E402

DATABASE = "lumina_bench_collab"
REDIS_URL = "redis://127.0.0.1:6379/12"
DRIVER = ROOT / "tests" / "ui" / "yjs_client" / "driver.mjs"
START_TIMEOUT = 120.0
TARGET_RATIO = 1 / 1.5
TARGET_P99_MS = 50.0

BARE_SERVER = """
import asyncio, sys
import uvicorn
from pycrdt.websocket import ASGIServer, WebsocketServer

async def main():
    # A client leaving mid-broadcast raises in its room; handled, as a deployment would.
    websocket_server = WebsocketServer(exception_handler=lambda exception, log: True)
    async with websocket_server:
        config = uvicorn.Config(
            ASGIServer(websocket_server), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning", loop="uvloop", http="httptools", lifespan="off",
        )
        await uvicorn.Server(config).serve()

asyncio.run(main())
"""


class Driver:
    def __init__(self) -> None:
        if not (DRIVER.parent / "node_modules" / "y-websocket").is_dir():
            raise RuntimeError("npm packages missing: run `make bench` (it runs npm ci)")
        self.process = subprocess.Popen(
            ["node", str(DRIVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.ids = 0

    def call(self, op: str, **arguments) -> dict:
        self.ids += 1
        self.process.stdin.write(json.dumps({"id": self.ids, "op": op, **arguments}) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        if not answer.pop("ok"):
            raise RuntimeError(f"{op}: {answer['error']}")
        return answer

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=20)


# --- Set-up ---------------------------------------------------------------------------------


def prepare_database(socket_dir: str) -> str:
    pgserver.recreate_database(socket_dir, DATABASE)
    database = pgserver.database_url(socket_dir, DATABASE)
    for key in [key for key in os.environ if key.startswith(("LUMINA_", "CELERY_"))]:
        if key != "LUMINA_DATA_DIR":
            del os.environ[key]
    os.environ.pop("REDIS_URL", None)
    os.environ.update(DATABASE_URL=database, DJANGO_SETTINGS_MODULE="config.settings")
    import logging

    import django

    django.setup()
    from django.core.management import call_command

    logging.disable(logging.WARNING)
    call_command("migrate", interactive=False, verbosity=0)
    return database


def create_owner() -> tuple[object, str]:
    from lumina.security.api import Actor
    from lumina.security.services.tokens import token_create
    from lumina.security.services.users import user_create

    user = user_create(email="collab-bench@bench.invalid", password=None)
    token = token_create(user_id=user.pk, actor=Actor.system("cli"), name="collab benchmark")
    return user, token.secret


def new_document(owner) -> str:
    from lumina.ui.models import Document

    return str(Document.objects.create(title="bench", owner_id=owner.pk).id)


def wait_live(processes: Processes, name: str, process, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise processes.failure(name, process, "exited before answering")
        if name.startswith("bare"):
            import socket

            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return
        elif live_status(port) == 200:
            return
        if time.monotonic() > deadline:
            raise processes.failure(name, process, "never answered")
        time.sleep(0.05)


def start_bare(processes: Processes) -> int:
    port = free_port()
    process = processes.start("bare", [sys.executable, "-c", BARE_SERVER, str(port)], clean_env())
    wait_live(processes, "bare", process, port)
    return port


def start_lumina(processes: Processes, database: str, name: str, redis: bool) -> int:
    port = free_port()
    env = clean_env()
    env.update(
        DATABASE_URL=database,
        DJANGO_SETTINGS_MODULE="config.settings",
        LUMINA_ADMIN_PASSWORD=secrets.token_urlsafe(18),
        LUMINA_LOG_LEVEL="WARNING",
        # Flooding writers would be closed at the default 100 messages/s.
        LUMINA_DOCUMENTS_MAX_MESSAGES_PER_SECOND="100000",
    )
    if redis:
        env["REDIS_URL"] = REDIS_URL
    command = [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = processes.start(name, command, env)
    wait_live(processes, name, process, port)
    return port


# --- Runs -------------------------------------------------------------------------------------


class Target:
    """Where clients connect: one or two servers, and how a document is named there."""

    def __init__(self, label: str, ports: list[int], document, token: str | None) -> None:
        self.label, self.ports, self.document, self.token = label, ports, document, token
        self.runs = 0

    def connect(self, driver: Driver, names: list[str]) -> None:
        # The first client opens the room before the others join: pycrdt-websocket's
        # server can leave a client unsynced when several open a new room at once.
        self.runs += 1
        document = self.document()
        for group in (names[:1], names[1:]):
            for name in group:
                index = names.index(name)
                port = self.ports[index % len(self.ports)]
                server = (
                    f"ws://127.0.0.1:{port}/ws/documents"
                    if self.token
                    else f"ws://127.0.0.1:{port}"
                )
                driver.call(
                    "connect",
                    name=f"{self.label}{self.runs}{name}",
                    server=server,
                    document=document,
                    params={"token": self.token} if self.token else {},
                    origin=f"http://127.0.0.1:{port}",
                    reconnect=True,
                )
            for name in group:
                driver.call("synced", name=f"{self.label}{self.runs}{name}", timeoutMs=30000)

    def run(
        self, driver: Driver, writers: int, readers: int, count: int, per_second: float | None
    ) -> dict:
        names = [f"w{i}" for i in range(writers)] + [f"r{i}" for i in range(readers)]
        self.connect(driver, names)
        prefix = f"{self.label}{self.runs}"
        result = driver.call(
            "run",
            writers=[f"{prefix}w{i}" for i in range(writers)],
            readers=[f"{prefix}r{i}" for i in range(readers)],
            count=count,
            perSecond=per_second,
        )
        for name in names:
            driver.call("disconnect", name=f"{prefix}{name}")
        return result


def measure(driver: Driver, target: Target, args) -> dict[str, tuple[float, float, float]]:
    """Per scenario: (updates/s flooding, median ms paced, p99 ms paced)."""
    scenarios = {
        "1 writer -> 5 readers": (1, 5, args.updates, args.rate),
        "10 writers": (10, 0, args.updates // 10, args.rate / 10),
    }
    out = {}
    for scenario, (writers, readers, count, rate) in scenarios.items():
        progress(f"{target.label}: {scenario}, flood of {writers * count}")
        target.run(driver, writers, readers, max(10, count // 10), None)  # warm-up
        flood = target.run(driver, writers, readers, count, None)
        progress(f"{target.label}: {scenario}, paced at {rate:g}/s per writer")
        paced_count = max(20, int(rate * args.paced_seconds))
        paced = target.run(driver, writers, readers, paced_count, rate)
        out[scenario] = (
            flood["total"] / (flood["elapsedMs"] / 1000),
            median(paced["latencies"]),
            p99(paced["latencies"]),
        )
    return out


def stored_updates() -> int:
    from lumina.ui.models import DocumentUpdate

    return DocumentUpdate.objects.count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=2000, help="updates per flood run")
    parser.add_argument("--rate", type=float, default=200.0, help="paced updates/s in all")
    parser.add_argument("--paced-seconds", type=float, default=4.0)
    parser.add_argument("--quick", action="store_true", help="500 updates, 2 s paced")
    parser.add_argument("--no-redis", action="store_true", help="skip the two-process runs")
    args = parser.parse_args()
    if args.quick:
        args.updates, args.paced_seconds = 500, 2.0
    load_at_start, started = os.getloadavg()[0], time.monotonic()
    logs = Path(tempfile.mkdtemp(prefix="lumina-collab-bench-"))
    processes = Processes(logs)
    socket_dir, held, succeeded = None, False, False
    driver: Driver | None = None
    results: dict[str, dict[str, tuple[float, float, float]]] = {}
    try:
        socket_dir, held = pgserver.attach()
        progress("preparing the database")
        database = prepare_database(socket_dir)
        owner, token = create_owner()
        driver = Driver()

        progress("starting pycrdt-websocket's bare ASGI server")
        bare = start_bare(processes)
        rooms = iter(range(1_000_000))
        bare_target = Target("bare", [bare], lambda: f"room{next(rooms)}", None)
        progress("starting manage.py serve")
        ours = start_lumina(processes, database, "lumina", redis=False)
        ours_target = Target("ours", [ours], lambda: new_document(owner), token)
        results["pycrdt-websocket ASGIServer (bare, nothing stored)"] = measure(
            driver, bare_target, args
        )
        results["Lumina /ws/documents/ (1 process, stored)"] = measure(driver, ours_target, args)
        if not args.no_redis:
            progress("starting two manage.py serve on Redis")
            first = start_lumina(processes, database, "lumina-a", redis=True)
            second = start_lumina(processes, database, "lumina-b", redis=True)
            two = Target("two", [first, second], lambda: new_document(owner), token)
            results["Lumina, 2 processes on Redis (stored)"] = measure(driver, two, args)
        stored = stored_updates()
        succeeded = True
    finally:
        if driver is not None:
            with contextlib.suppress(Exception):
                driver.close()
        processes.stop_all()
        if socket_dir is not None:
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
            pgserver.recreate_database(socket_dir, DATABASE, create=False)
            if held:
                pgserver.release()
        shutil.rmtree(logs, ignore_errors=True) if succeeded else progress(f"logs in {logs}")

    header = ("server", "scenario", "updates/s (flood)", "median ms (paced)", "p99 ms (paced)")
    rows = [
        (server, scenario, f"{rate:,.0f}", f"{mid:.2f}", f"{tail:.2f}")
        for server, scenarios in results.items()
        for scenario, (rate, mid, tail) in scenarios.items()
    ]
    print(
        table(
            f"Yjs updates through one document (flood {args.updates} updates; paced "
            f"{args.rate:g} updates/s for {args.paced_seconds:g} s)",
            header,
            rows,
        )
    )
    bare_rows = results["pycrdt-websocket ASGIServer (bare, nothing stored)"]
    our_rows = results["Lumina /ws/documents/ (1 process, stored)"]
    print()
    for scenario in bare_rows:
        ratio = our_rows[scenario][0] / bare_rows[scenario][0]
        print(
            f"{scenario}: ours/bare throughput {ratio:.2f} (target >= {TARGET_RATIO:.2f}); "
            f"p99 {our_rows[scenario][2]:.2f} ms (target <= {TARGET_P99_MS:g} ms)"
        )
    print(
        f"{stored} updates stored by Lumina in all; {os.cpu_count()} CPUs; 1-min load "
        f"average {load_at_start:.1f} at start, {os.getloadavg()[0]:.1f} at end; "
        f"{time.monotonic() - started:.0f}s in all; database {DATABASE} dropped"
    )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("collab benchmark interrupted; subprocesses stopped, database dropped")
    except RuntimeError as exc:
        sys.exit(f"collab benchmark failed: {exc}")
