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

A second table gives the CPU time (this thread's, so neither PostgreSQL's nor other
processes' work counts) per event of one usage-ledger batch, as the gateway's web
process pays it: 200 requests, so 200 ``UsageRecorded`` and 200 ``CompletionGenerated``
events, published in one transaction (the transport holds them), then delivered
in-process with the real cost projection subscribed; and the ledger writer's whole
flush (COPY of the ledger rows, publish, in-process delivery) per request.

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


# --- Usage-ledger batches: CPU per event ---------------------------------------------------

USAGE_REQUESTS = 200  # the ledger writer's batch; each request adds two events
HELD_TRANSPORT = "benchmarks._support.bus_probe.HeldTransport"


@dataclass
class CpuRow:
    scenario: str
    unit: str  # what one figure is per: "event" or "request"
    count: int  # events or requests per batch
    per_batch_ms: list[float] = field(default_factory=list)


def usage_entries(count: int) -> list:
    """``count`` successful chats of 10 users on 2 models today: 20 rollup keys."""
    import datetime as dt
    import uuid
    from decimal import Decimal

    from lumina.providers.types import Usage, UsageEntry, UsageStatus

    users = [uuid.UUID(int=n + 1) for n in range(10)]
    provider = uuid.UUID(int=100)
    now = dt.datetime.now(dt.UTC)
    return [
        UsageEntry(
            id=uuid.uuid4(),
            occurred_at=now,
            request_id=f"req-{n}",
            operation="chat",
            status=UsageStatus.OK,
            stream=n % 2 == 0,
            requested_model="gpt-4o-mini",
            usage=Usage(input_tokens=100 + n, output_tokens=20),
            cost=Decimal("0.000123"),
            user_id=users[n % len(users)],
            token_id=users[n % len(users)],
            provider_id=provider,
            provider_name="openai",
            deployment_id=provider,
            model=("gpt-4o-mini", "gpt-4o")[n % 2],
            latency_ms=120.5,
        )
        for n in range(count)
    ]


def completion_event(entry):
    from lumina.providers.events.completion import CompletionGenerated

    return CompletionGenerated(
        request_id=entry.request_id,
        user_id=entry.user_id,
        token_id=entry.token_id,
        provider_id=entry.provider_id,
        deployment_id=entry.deployment_id,
        model=entry.model,
        stream=entry.stream,
        finish_reason="stop",
        prompt_tokens=entry.usage.prompt_tokens,
        completion_tokens=entry.usage.completion_tokens,
        cost=entry.cost,
        latency_ms=entry.latency_ms,
    )


def reset_usage() -> None:
    from django.db import connection

    from lumina.providers.models.usage import DailyUsage, UsageRecord

    reset_outbox()
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {DailyUsage._meta.db_table}, {UsageRecord._meta.db_table}")


def check_usage_projected(requests: int) -> None:
    from django.db.models import Sum

    from lumina.providers.models.usage import DailyUsage

    counts = outbox_counts()
    projected = DailyUsage.objects.aggregate(n=Sum("requests"))["n"]
    if counts["delivered"] != 2 * requests or projected != requests:
        raise RuntimeError(f"expected {requests} requests projected, found {counts}, {projected}")


def usage_publish_and_deliver(requests: int) -> tuple[float, float]:
    """CPU ms of publishing one batch's events (held), then of delivering them in-process."""
    from django.conf import settings
    from django.db import transaction

    from benchmarks._support.bus_probe import HeldTransport
    from lumina.kernel import bus
    from lumina.kernel.transports import InProcessTransport
    from lumina.providers.events.usage import UsageRecorded

    reset_usage()
    entries = usage_entries(requests)
    events = [UsageRecorded.from_entry(e) for e in entries]
    events += [completion_event(e) for e in entries]
    HeldTransport.held = []
    transport_path = settings.LUMINA_EVENT_TRANSPORT
    settings.LUMINA_EVENT_TRANSPORT = HELD_TRANSPORT
    try:
        started = time.thread_time()
        with transaction.atomic():
            bus.publish_many(events)
        published = time.thread_time() - started
    finally:
        settings.LUMINA_EVENT_TRANSPORT = transport_path
    if len(HeldTransport.held) != len(events):
        raise RuntimeError(f"{len(HeldTransport.held)} of {len(events)} events dispatched")
    started = time.thread_time()
    InProcessTransport().dispatch(HeldTransport.held)
    delivered = time.thread_time() - started
    check_usage_projected(requests)
    return published * 1000, delivered * 1000


def usage_writer_flush(requests: int) -> float:
    """CPU ms of the ledger writer's flush of one batch: COPY, publish, in-process delivery."""
    from lumina.providers.services import usage as usage_services

    reset_usage()
    entries = usage_entries(requests)
    for entry in entries:
        usage_services.usage_submit(entry)
        usage_services.usage_event_submit(completion_event(entry))
    started = time.thread_time()
    written = usage_services.usage_flush()
    elapsed = time.thread_time() - started
    if written != requests:
        raise RuntimeError(f"the writer wrote {written} of {requests} entries")
    check_usage_projected(requests)
    return elapsed * 1000


def measure_usage_batches(*, runs: int) -> list[CpuRow]:
    from django.conf import settings

    settings.LUMINA_USAGE_WRITER_THREAD = False  # flushed here, in this thread
    events = 2 * USAGE_REQUESTS
    publish = CpuRow(f"usage batch: publish {events} events, 1 transaction", "event", events)
    deliver = CpuRow(
        f"usage batch: deliver {events} events in-process (cost projection)", "event", events
    )
    flush = CpuRow(
        f"usage writer: flush {USAGE_REQUESTS} requests (COPY, publish, deliver)",
        "request",
        USAGE_REQUESTS,
    )
    usage_publish_and_deliver(USAGE_REQUESTS)  # warm-up
    usage_writer_flush(USAGE_REQUESTS)
    for number in range(1, runs + 1):
        published, delivered = usage_publish_and_deliver(USAGE_REQUESTS)
        publish.per_batch_ms.append(published)
        deliver.per_batch_ms.append(delivered)
        flush.per_batch_ms.append(usage_writer_flush(USAGE_REQUESTS))
        progress(
            f"usage batch: run {number}/{runs}: publish {published:.1f} ms, deliver"
            f" {delivered:.1f} ms, writer flush {flush.per_batch_ms[-1]:.1f} ms CPU"
        )
    return [publish, deliver, flush]


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
    lines: list[tuple[str, ...]] = []
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
    return render_table(header, lines)


def cpu_table(rows: list[CpuRow]) -> str:
    header = ("CPU time (this thread)", "per", "median ms/unit", "min", "max", "ms/batch", "runs")
    lines = []
    for row in rows:
        per_unit = [ms / row.count for ms in row.per_batch_ms]
        lines.append(
            (
                row.scenario,
                row.unit,
                f"{statistics.median(per_unit):.3f}",
                f"{min(per_unit):.3f}",
                f"{max(per_unit):.3f}",
                f"{statistics.median(row.per_batch_ms):.1f}",
                str(len(row.per_batch_ms)),
            )
        )
    return render_table(header, lines)


def render_table(header: tuple[str, ...], lines: list[tuple[str, ...]]) -> str:
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
    parser.add_argument(
        "--only",
        choices=["throughput", "usage"],
        help="run only the throughput table or only the usage-batch CPU table",
    )
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
        rows: list[Row] = []
        cpu_rows: list[CpuRow] = []
        if args.only != "usage":
            rows += [
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
        if args.only != "throughput":
            cpu_rows = measure_usage_batches(runs=runs)
    finally:
        connections.close_all()
        recreate_database(socket_dir, create=False)
        if held:
            pgserver.release()
    if rows:
        print(table(rows))
    if cpu_rows:
        print(("\n" if rows else "") + cpu_table(cpu_rows))
    print(
        f"\n{os.cpu_count()} CPUs; 1-min load average {load_at_start:.1f} at start,"
        f" {os.getloadavg()[0]:.1f} at end; {time.monotonic() - started:.0f}s in all;"
        f" database {DATABASE} dropped"
    )


if __name__ == "__main__":
    main()
