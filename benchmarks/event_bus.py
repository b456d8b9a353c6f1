"""Event-bus throughput: events per second published and delivered through the outbox.

Prints one table (scenario, events, median events/s, min, max, runs) for:

* the in-process transport, 1,000 events published in ONE transaction and delivered
  on commit to a trivial handler, timed from before ``transaction.atomic()`` until
  the block has exited (every event is delivered by then);
* the in-process transport, 1,000 transactions of one event each;
* the Celery transport, 1,000 events published in one transaction and delivered by
  a real ``celery worker`` subprocess, over Redis and over RabbitMQ, timed from the
  start of publishing until every outbox row is ``delivered``.

Every figure is the median of 5 runs (Celery: 3) after a small warm-up run.

Run it from the repository root (about two minutes):

    .venv/bin/python benchmarks/event_bus.py        # --help for the options

It never touches dev data: it works in its own database, ``lumina_bench``, on the
embedded PostgreSQL server (dropped and re-created at start, dropped at the end),
uses Redis db 14 (flushed before and after) and a queue of its own,
``lumina_bench``, on both brokers. A broker that does not answer on 127.0.0.1
(Redis 6379, RabbitMQ 5672) gets a "skipped (not reachable)" row.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._support import pgserver  # noqa: E402 (needs the repository root on sys.path)

DATABASE = "lumina_bench"
QUEUE = "lumina_bench"
PROBE_MODULE = "benchmarks._support.bus_probe"
BROKERS = {
    "Redis": "redis://127.0.0.1:6379/14",
    "RabbitMQ": "amqp://guest:guest@127.0.0.1:5672//",
}
WARMUP_EVENTS = 50
CELERY_TIMEOUT = 120.0  # seconds one Celery run may take before the benchmark gives up
RESULT_PREFIX = "event-bus-benchmark-result "


@dataclass
class Row:
    scenario: str
    events: int
    rates: list[float] = field(default_factory=list)
    note: str = ""


# --- Database and Django ------------------------------------------------------------------


def database_url(socket_dir: str) -> str:
    return pgserver.database_url(socket_dir, DATABASE)


def recreate_database(socket_dir: str, *, create: bool = True) -> None:
    pgserver.recreate_database(socket_dir, DATABASE, create=create)


def setup_django() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()


def reset_outbox() -> None:
    from django.db import connection

    from lumina.kernel.models import OutboxEvent, ProcessedEvent

    tables = f"{OutboxEvent._meta.db_table}, {ProcessedEvent._meta.db_table}"
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables}")


def outbox_counts() -> dict[str, int]:
    from django.db.models import Count, Q

    from lumina.kernel.models import OutboxEvent, ProcessedEvent

    status = OutboxEvent.Status
    counts = OutboxEvent.objects.aggregate(
        delivered=Count("pk", filter=Q(status=status.DELIVERED)),
        failed=Count("pk", filter=Q(status=status.FAILED)),
    )
    counts["handled"] = ProcessedEvent.objects.count()
    return counts


def check_all_delivered(events: int) -> None:
    """Every row delivered AND the handler really ran once per event."""
    counts = outbox_counts()
    if counts["delivered"] != events or counts["handled"] != events:
        raise RuntimeError(f"expected {events} delivered and handled events, found {counts}")


def publish_in_one_transaction(events: int) -> None:
    from django.db import transaction

    from benchmarks._support.bus_probe import BenchProbe
    from lumina.kernel import bus

    with transaction.atomic():
        for seq in range(events):
            bus.publish(BenchProbe(seq=seq))


# --- In-process transport -----------------------------------------------------------------


def inprocess_one_transaction(events: int) -> float:
    reset_outbox()
    started = time.perf_counter()
    publish_in_one_transaction(events)  # delivery runs in on_commit, inside this call
    elapsed = time.perf_counter() - started
    check_all_delivered(events)
    return events / elapsed


def inprocess_many_transactions(events: int) -> float:
    from django.db import transaction

    from benchmarks._support.bus_probe import BenchProbe
    from lumina.kernel import bus

    reset_outbox()
    started = time.perf_counter()
    for seq in range(events):
        with transaction.atomic():
            bus.publish(BenchProbe(seq=seq))
    elapsed = time.perf_counter() - started
    check_all_delivered(events)
    return events / elapsed


def measure(scenario: str, run, *, events: int, runs: int) -> Row:
    run(WARMUP_EVENTS)
    row = Row(scenario, events)
    for number in range(1, runs + 1):
        row.rates.append(run(events))
        progress(f"{scenario}: run {number}/{runs}: {row.rates[-1]:,.0f} events/s")
    return row


# --- Celery transport ---------------------------------------------------------------------


def broker_reachable(url: str) -> bool:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception:
        return False
    return True


def clear_broker(url: str) -> None:
    """Leave nothing of ours behind: flush Redis db 14 / delete our RabbitMQ queue."""
    from kombu import Connection

    if url.startswith("redis://"):
        import redis

        redis.Redis.from_url(url).flushdb()
        return
    with Connection(url, connect_timeout=2) as conn:
        conn.default_channel.queue_delete(QUEUE)


def subprocess_env(broker: str, database: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LUMINA_", "CELERY_")) and key not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        DATABASE_URL=database,
        CELERY_BROKER_URL=broker,
        LUMINA_EVENT_TRANSPORT="celery",
    )
    if os.environ.get("LUMINA_DATA_DIR"):
        env["LUMINA_DATA_DIR"] = os.environ["LUMINA_DATA_DIR"]
    return env


def worker_command(nodename: str, pool: str, concurrency: int) -> list[str]:
    command = [str(Path(sys.executable).with_name("celery")), "-A", "config", "worker"]
    command += [f"--pool={pool}", f"--queues={QUEUE}", f"--hostname={nodename}"]
    command += [f"--include={PROBE_MODULE}", "--loglevel=WARNING"]
    command += ["--without-gossip", "--without-mingle"]
    if pool == "prefork":
        command.append(f"--concurrency={concurrency}")
    return command


def stop_worker(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)  # warm shutdown
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)  # its own session: the worker and its pool
            worker.wait()


def celery_scenario(
    broker_name: str, *, database: str, pool: str, concurrency: int, events: int, runs: int
) -> Row:
    broker = BROKERS[broker_name]
    worker_desc = f"--pool={pool}" + (f" --concurrency={concurrency}" if pool == "prefork" else "")
    row = Row(f"celery over {broker_name}, 1 transaction; worker {worker_desc}", events)
    if not broker_reachable(broker):
        row.note = "skipped (not reachable)"
        return row
    nodename = f"lumina-bench-{os.getpid()}@{socket.gethostname()}"
    env = subprocess_env(broker, database)
    clear_broker(broker)
    with tempfile.TemporaryDirectory(prefix="lumina-bench-") as tmp:
        log_path = Path(tmp) / "worker.log"
        with log_path.open("wb") as log:
            worker = subprocess.Popen(
                worker_command(nodename, pool, concurrency),
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        publisher_command = [sys.executable, __file__, "--celery-publisher", nodename]
        publisher_command += [f"--events={events}", f"--celery-runs={runs}"]
        try:
            publisher = subprocess.run(
                publisher_command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=60 + (runs + 1) * CELERY_TIMEOUT,
            )
            if publisher.returncode != 0:
                raise RuntimeError(
                    f"{row.scenario}: the publisher failed:\n{publisher.stderr[-4000:]}\n"
                    f"worker log:\n{log_path.read_text(errors='replace')[-4000:]}"
                )
        finally:
            stop_worker(worker)
            clear_broker(broker)
    result = next(line for line in publisher.stdout.splitlines() if line.startswith(RESULT_PREFIX))
    row.rates = json.loads(result.removeprefix(RESULT_PREFIX))
    for number, rate in enumerate(row.rates, 1):
        progress(f"{row.scenario}: run {number}/{runs}: {rate:,.0f} events/s")
    return row


def wait_for_worker(nodename: str, timeout: float = 60.0) -> None:
    from config.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.control.ping(destination=[nodename], timeout=0.5):
            return
    raise RuntimeError(f"worker {nodename} did not answer a ping within {timeout:.0f}s")


def celery_once(events: int) -> float:
    reset_outbox()
    started = time.perf_counter()
    publish_in_one_transaction(events)  # on commit: one deliver_events task per 100 events
    deadline = started + CELERY_TIMEOUT
    while True:
        counts = outbox_counts()
        if counts["delivered"] == events:
            break
        if counts["failed"] or time.perf_counter() > deadline:
            raise RuntimeError(f"Celery delivery stalled or failed: {counts}")
        time.sleep(0.02)  # at most 20 ms late on a run of several seconds
    elapsed = time.perf_counter() - started
    check_all_delivered(events)
    return events / elapsed


def celery_publisher(nodename: str, *, events: int, runs: int) -> None:
    """The publishing side of a Celery scenario, run as a subprocess of this script.

    Its environment (LUMINA_EVENT_TRANSPORT=celery, CELERY_BROKER_URL, DATABASE_URL)
    is set by the parent, as settings read them when Django is set up.
    """
    setup_django()
    from config.celery import app

    app.conf.task_default_queue = QUEUE  # the worker consumes only this queue
    wait_for_worker(nodename)
    celery_once(WARMUP_EVENTS)
    rates = [celery_once(events) for _ in range(runs)]
    print(RESULT_PREFIX + json.dumps(rates), flush=True)


# --- Report -------------------------------------------------------------------------------


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def table(rows: list[Row]) -> str:
    header = ("scenario", "events", "median events/s", "min", "max", "runs")
    lines = []
    for row in rows:
        if row.note:
            lines.append((row.scenario, f"{row.events:,}", row.note, "", "", "0"))
            continue
        lines.append(
            (
                row.scenario,
                f"{row.events:,}",
                f"{statistics.median(row.rates):,.0f}",
                f"{min(row.rates):,.0f}",
                f"{max(row.rates):,.0f}",
                str(len(row.rates)),
            )
        )
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]

    def render(cells: tuple[str, ...]) -> str:
        first, *numbers = cells
        return "  ".join(
            [first.ljust(widths[0])]
            + [cell.rjust(width) for cell, width in zip(numbers, widths[1:], strict=True)]
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(header), rule, *(render(line) for line in lines)])


# --- Main ---------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000, help="events per run (1000)")
    parser.add_argument("--runs", type=int, default=5, help="in-process runs (5)")
    parser.add_argument("--celery-runs", type=int, default=3, help="Celery runs (3)")
    parser.add_argument("--pool", choices=["prefork", "solo"], default="prefork")
    parser.add_argument("--concurrency", type=int, default=2, help="prefork processes (2)")
    parser.add_argument("--celery-publisher", metavar="NODENAME", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.celery_publisher:
        celery_publisher(args.celery_publisher, events=args.events, runs=args.celery_runs)
        return

    # This process holds a handle on the embedded server for the whole benchmark, so
    # the server stays up while subprocesses connect to it by DATABASE_URL.
    socket_dir, held = pgserver.attach()
    database = database_url(socket_dir)
    recreate_database(socket_dir)
    for key in [key for key in os.environ if key.startswith(("LUMINA_", "CELERY_"))]:
        if key != "LUMINA_DATA_DIR":
            del os.environ[key]
    os.environ.pop("REDIS_URL", None)
    os.environ.update(DATABASE_URL=database, LUMINA_EVENT_TRANSPORT="inprocess")
    setup_django()
    from django.core.management import call_command
    from django.db import connections

    started, load_at_start = time.monotonic(), os.getloadavg()[0]
    try:
        call_command("migrate", interactive=False, verbosity=0)
        events, runs = args.events, args.runs
        rows = [
            measure(
                "in-process, 1 transaction", inprocess_one_transaction, events=events, runs=runs
            ),
            measure(
                f"in-process, {events:,} transactions of 1 event",
                inprocess_many_transactions,
                events=events,
                runs=runs,
            ),
        ]
        for broker_name in BROKERS:
            rows.append(
                celery_scenario(
                    broker_name,
                    database=database,
                    pool=args.pool,
                    concurrency=args.concurrency,
                    events=events,
                    runs=args.celery_runs,
                )
            )
    finally:
        connections.close_all()
        recreate_database(socket_dir, create=False)
        if held:
            pgserver.release()
    print(table(rows))
    print(
        f"\n{os.cpu_count()} CPUs; 1-min load average {load_at_start:.1f} at start,"
        f" {os.getloadavg()[0]:.1f} at end; {time.monotonic() - started:.0f}s in all;"
        f" database {DATABASE} dropped"
    )


if __name__ == "__main__":
    main()
