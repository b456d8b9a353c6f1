"""Realtime notifications: events per second delivered, and latency from commit to client.

Prints one table (scenario, subscribers, events, delivered/s, p50 and p99 latency) for
events committed in this process, one transaction each, as a ``tools.ToolExecuted`` of
one user, delivered in process on commit to the realtime handler, sent through Redis
(channels-redis) to a web server process (uvicorn, ``config.asgi``) and from there over
TCP to websocket clients (the ``websockets`` package) subscribed to ``tools``:

* as fast as the publisher commits (throughput; latency includes the queueing);
* paced at 50 events a second (latency without a queue).

``committed/s`` is the publisher's own pace (commit and in-process delivery, one
transaction per event): on a loaded machine it, not the fan-out, bounds ``delivered/s``
(messages received by all clients together).

Latency runs from the moment the publishing transaction has committed (an ``on_commit``
callback registered before the publish) to the client's receipt, both read from this
process's monotonic clock. Every figure is the median of ``--runs`` runs (default 3).

It works in its own database, ``lumina_bench_realtime``, on the embedded PostgreSQL
server (dropped and re-created at start, dropped at the end) and Redis db 8 (flushed
before and after). Run it from the repository root (about a minute):

    .venv/bin/python benchmarks/realtime.py        # --help for the options
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._support import pgserver  # noqa: E402 (needs the repository root on sys.path)
from benchmarks._support.processes import (  # noqa: E402
    Processes,
    clean_env,
    free_port,
    live_status,
    progress,
)
from benchmarks._support.stats import median, ms, num, p99, table  # noqa: E402

DATABASE = "lumina_bench_realtime"
REDIS_URL = "redis://127.0.0.1:6379/8"


class Clients:
    """Websocket clients on a loop of their own; each receipt's time, by event name."""

    def __init__(self, url: str, secret: str, count: int) -> None:
        self.url, self.secret, self.count = url, secret, count
        self.loop = asyncio.new_event_loop()
        self.received: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sockets: list = []
        asyncio.run_coroutine_threadsafe(self._open(), self.loop).result(60)

    async def _open(self) -> None:
        from websockets.asyncio.client import connect

        for _ in range(self.count):
            socket_ = await connect(
                self.url, additional_headers={"Authorization": f"Bearer {self.secret}"}
            )
            assert json.loads(await socket_.recv())["type"] == "ready"
            await socket_.send(json.dumps({"type": "subscribe", "topics": ["tools"]}))
            assert json.loads(await socket_.recv())["accepted"] == ["tools"]
            self.sockets.append(socket_)
            self.loop.create_task(self._read(socket_))

    async def _read(self, socket_) -> None:
        async for text in socket_:
            at = time.monotonic()
            name = json.loads(text)["data"]["tool_name"]
            with self.lock:
                self.received.setdefault(name, []).append(at)

    def reset(self) -> None:
        with self.lock:
            self.received = {}

    def total(self) -> int:
        with self.lock:
            return sum(len(times) for times in self.received.values())

    def close(self) -> None:
        async def close_all():
            for socket_ in self.sockets:
                await socket_.close()

        asyncio.run_coroutine_threadsafe(close_all(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)


def publish_one(user_id: uuid.UUID, name: str, committed: dict[str, float]) -> None:
    from django.db import transaction

    from lumina.kernel.bus import publish
    from lumina.tools.events import ToolExecuted

    with transaction.atomic():
        transaction.on_commit(lambda: committed.__setitem__(name, time.monotonic()))
        publish(
            ToolExecuted(
                execution_id=uuid.uuid4(),
                tool_id=None,
                tool_name=name,
                tool_version=1,
                duration_ms=0.0,
                actor_id=user_id,
            )
        )


def run_once(clients: Clients, user_id, *, events: int, rate: float | None) -> tuple:
    clients.reset()
    committed: dict[str, float] = {}
    run = uuid.uuid4().hex[:8]
    start = time.monotonic()
    for n in range(events):
        if rate is not None:
            time.sleep(max(0.0, start + n / rate - time.monotonic()))
        publish_one(user_id, f"{run}-{n}", committed)
    expected = events * clients.count
    deadline = time.monotonic() + 60
    while clients.total() < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    with clients.lock:
        received = dict(clients.received)
    latencies = [at - committed[name] for name, times in received.items() for at in times]
    first, last = min(committed.values()), max(at for times in received.values() for at in times)
    delivered = sum(len(times) for times in received.values())
    committed_rate = events / (max(committed.values()) - first) if events > 1 else math.nan
    return delivered / (last - first), latencies, delivered, expected, committed_rate


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=500, help="events per run")
    parser.add_argument("--runs", type=int, default=3)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    socket_dir, held = pgserver.attach()
    database = pgserver.database_url(socket_dir, DATABASE)
    pgserver.recreate_database(socket_dir, DATABASE)
    for key in [key for key in os.environ if key.startswith(("LUMINA_", "CELERY_"))]:
        if key != "LUMINA_DATA_DIR":
            del os.environ[key]
    os.environ.update(
        DATABASE_URL=database,
        REDIS_URL=REDIS_URL,
        LUMINA_EVENT_TRANSPORT="inprocess",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    import django
    import redis

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from lumina.security.models.rbac import Role, RoleAssignment
    from lumina.security.models.users import User
    from lumina.security.services.tokens import token_create
    from lumina.security.types import Actor

    redis.Redis.from_url(REDIS_URL).flushdb()
    started, load_at_start = time.monotonic(), os.getloadavg()[0]
    logs = Path(tempfile.mkdtemp(prefix="lumina-bench-realtime-"))
    processes = Processes(logs)
    rows = []
    try:
        progress("migrating")
        call_command("migrate", interactive=False, verbosity=0)
        user = User.objects.create_user("bench@realtime.example", None)
        RoleAssignment.objects.create(role=Role.objects.get(name="Developer"), user=user)
        secret = token_create(user_id=user.pk, actor=Actor.system("bench"), scopes=["*"]).secret
        port = free_port()
        env = clean_env()
        env.update(DATABASE_URL=database, REDIS_URL=REDIS_URL, LUMINA_EVENT_TRANSPORT="inprocess")
        server = processes.start(
            "web",
            [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning", "--loop", "uvloop"],
            env,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while live_status(port) != 200:
            if server.poll() is not None or time.monotonic() > deadline:
                raise processes.failure("web", server, "did not start")
            time.sleep(0.2)
        for subscribers in (1, 20):
            clients = Clients(f"ws://127.0.0.1:{port}/ws/realtime/", secret, subscribers)
            for label, rate in (("as fast as committed", None), ("paced, 50 events/s", 50.0)):
                events = args.events if rate is None else min(args.events, 250)
                progress(f"{label}, {subscribers} subscriber(s)")
                run_once(clients, user.pk, events=20, rate=None)  # warm-up
                results = [
                    run_once(clients, user.pk, events=events, rate=rate) for _ in range(args.runs)
                ]
                missing = sum(r[3] - r[2] for r in results)
                rows.append(
                    (
                        label,
                        str(subscribers),
                        f"{events:,}",
                        num(statistics.median(r[4] for r in results), 0),
                        num(statistics.median(r[0] for r in results), 0),
                        ms(median([median(r[1]) for r in results])),
                        ms(median([p99(r[1]) for r in results])),
                        str(missing),
                    )
                )
            clients.close()
    finally:
        processes.stop_all()
        connections.close_all()
        redis.Redis.from_url(REDIS_URL).flushdb()
        pgserver.recreate_database(socket_dir, DATABASE, create=False)
        if held:
            pgserver.release()
    print(
        table(
            "Realtime: committed here -> Redis -> web process -> websocket clients (medians)",
            (
                "scenario",
                "subscribers",
                "events",
                "committed/s",
                "delivered/s",
                "p50 ms",
                "p99 ms",
                "lost",
            ),
            rows,
        )
    )
    print(
        f"\n{os.cpu_count()} CPUs; 1-min load average {load_at_start:.1f} at start,"
        f" {os.getloadavg()[0]:.1f} at end; {time.monotonic() - started:.0f}s in all;"
        f" database {DATABASE} dropped"
    )


if __name__ == "__main__":
    main()
