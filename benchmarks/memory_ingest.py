"""Memory ingest and search: 10,000 dated turns imported over HTTP, then searched.

Lumina runs as in production (``manage.py serve`` on 127.0.0.1, its own database on the
embedded PostgreSQL). The script prints two tables:

1. **Import** — the local embedder's own speed on the same 10,000 texts (int8
   all-MiniLM-L6-v2 called directly, batches of 256, the batch size imports use), then
   ``POST /api/v1/memory/import`` of the whole history (JSONL, 100 sessions over two
   years) timed from request to answer: turns/s and its ratio to the embedder's
   sentences/s, and the CPU per turn the import cost in Lumina's process and in
   PostgreSQL beside the embedder's CPU per sentence. Both are timed warm: the embedder
   after one batch, Lumina after one search has loaded its model. What is timed is the whole
   request: the import embeds every turn (and each distinct fact it stores), extracts
   and consolidates facts, writes turns and facts (one binary COPY per batch), their
   HNSW and GIN index entries, the turns' entity graph and the outbox events in one
   transaction, ANALYZEs the table, and then, with the default in-process event
   transport, runs the handlers (the facts' graph, topics) after the commit, before
   answering. Target: ratio ≥ 0.75.
2. **Search** — ``POST /api/v1/memory/search`` (hybrid, k=10) over HTTP with an API
   token, one request at a time, for distinct questions (a quarter name a period, such
   as "last spring" or "in March 2023"): median and p99 from the client, warm-up
   excluded. Target: p50 ≤ 25 ms.
3. **Listing** — ``GET /api/v1/memory/records`` as the console's memory page reads it
   (``layer=semantic``, first page of 50), and the first page of everything: median and
   p99 from the client. Target: ≤ 50 ms.

The history is synthetic and seeded (``--seed``): people, places and activities drawn
from small vocabularies, so facts recur and contradict each other as in real logs.

    .venv/bin/python benchmarks/memory_ingest.py             # ~2-4 minutes
    .venv/bin/python benchmarks/memory_ingest.py --turns 2000 --queries 100   # quicker
    .venv/bin/python benchmarks/memory_ingest.py --keep     # leave the database in place
    .venv/bin/python benchmarks/memory_ingest.py --reuse    # search the kept one again
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import secrets
import sys
import tempfile
import time
import urllib.request
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

DATABASE = "lumina_bench_memory"
START_TIMEOUT = 120.0
SESSIONS = 100
WARMUP = 20
TARGET_RATIO = 0.75
TARGET_P50_MS = 25.0
TARGET_LIST_MS = 50.0

PEOPLE = ["Ana", "Ben", "Chloe", "Dev", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jon"]
PLACES = ["Lisbon", "Berlin", "Porto", "Madrid", "Oslo", "Vienna", "Prague", "Lyon", "Turin",
          "Ghent", "Kraków", "Seville"]  # fmt: skip
EMPLOYERS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark Labs", "Wayne Foods"]
ACTIVITIES = ["pottery", "bouldering", "sourdough baking", "chess", "salsa dancing",
              "birdwatching", "trail running", "watercolour painting", "sailing", "knitting",
              "photography", "choir singing"]  # fmt: skip
PETS = ["Pixel", "Biscuit", "Mochi", "Rex", "Luna", "Olive", "Pepper"]
TEMPLATES = [
    "I live in {place} now, the neighbourhood is quiet.",
    "I work at {employer} and the new project is going well.",
    "Last weekend I tried {activity} for the first time.",
    "My dog is called {pet}, he chewed my shoes again.",
    "We went to {place} for a long weekend and loved the food.",
    "I really love {activity}, it clears my head after work.",
    "{person} told me about a great café in {place}.",
    "The meeting at {employer} ran late so I missed {activity}.",
    "I moved to {place} because of a new job at {employer}.",
    "Do you remember when {person} visited us in {place}?",
    "I am thinking about signing up for a {activity} course.",
    "The weather in {place} was terrible, it rained all week.",
    "{person} and I cooked dinner together, it was lovely.",
    "I have a {activity} class every Tuesday evening.",
    "Work at {employer} is stressful, I need a holiday.",
]
REPLIES = [
    "That sounds wonderful, tell me more about it.",
    "How did that make you feel?",
    "I remember you mentioned {place} before.",
    "That is great news about {activity}!",
    "Say hello to {pet} from me.",
    "What did {person} think about it?",
]
QUESTIONS = [
    "Where does the user live?",
    "Where does the user work?",
    "What is the name of the dog?",
    "Which hobbies has the user tried?",
    "When did the user move to {place}?",
    "What did {person} recommend in {place}?",
    "Does the user enjoy {activity}?",
    "What happened at {employer}?",
    "Who visited {place}?",
    "What did we cook for dinner?",
    "What did I do last spring?",
    "Where did I travel in {year}?",
    "What did I say about {activity} in March {year}?",
    "How was the weather in {place} last summer?",
]


def history(turns: int, seed: int) -> list[dict]:
    """``turns`` dated turns in ``SESSIONS`` sessions spread over two years."""
    rng = random.Random(seed)
    start = dt.datetime(2023, 1, 1, 9, tzinfo=dt.UTC)
    per_session = max(1, turns // SESSIONS)
    lines = []
    for number in range(SESSIONS):
        when = start + dt.timedelta(days=number * 7, hours=rng.randint(0, 10))
        count = per_session if number < SESSIONS - 1 else turns - per_session * (SESSIONS - 1)
        for position in range(count):
            words = {
                "place": rng.choice(PLACES),
                "employer": rng.choice(EMPLOYERS),
                "activity": rng.choice(ACTIVITIES),
                "pet": rng.choice(PETS),
                "person": rng.choice(PEOPLE),
            }
            user_turn = position % 2 == 0
            text = rng.choice(TEMPLATES if user_turn else REPLIES).format(**words)
            lines.append(
                {
                    "session_id": f"session-{number:03d}",
                    "speaker": "Sam" if user_turn else "assistant",
                    "text": f"{text} ({number}.{position})",
                    "occurred_at": (when + dt.timedelta(minutes=position)).isoformat(),
                    "id": f"{number}:{position}",
                    "channel": "chat",
                }
            )
    return lines


def questions(count: int, seed: int) -> list[str]:
    rng = random.Random(seed + 1)
    found = []
    for index in range(count):
        text = rng.choice(QUESTIONS).format(
            place=rng.choice(PLACES),
            person=rng.choice(PEOPLE),
            activity=rng.choice(ACTIVITIES),
            employer=rng.choice(EMPLOYERS),
            year=rng.choice([2023, 2024]),
        )
        found.append(f"{text} #{index}")  # distinct: nothing is served from a cache
    return found


def embedder_rate(texts: list[str]) -> tuple[float, float]:
    """Sentences per second of the local model itself, in the import's batch size, and
    the CPU seconds it spent per sentence (all its threads)."""
    from lumina.memory.services.record_embedding import BATCH
    from lumina.providers.local.minilm import embed

    embed(texts[:BATCH])  # load and warm
    cpu = cpu_seconds(os.getpid())
    started = time.perf_counter()
    for start in range(0, len(texts), BATCH):
        embed(texts[start : start + BATCH])
    seconds = time.perf_counter() - started
    return len(texts) / seconds, (cpu_seconds(os.getpid()) - cpu) / len(texts)


def prepare(socket_dir: str, *, reuse: bool = False) -> tuple[str, str]:
    """Fresh database (or the kept one), migrated, with a Developer and an API token;
    (DATABASE_URL, token)."""
    if not reuse:
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

    logging.disable(logging.INFO)
    call_command("migrate", interactive=False, verbosity=0)

    from django.db import connections

    from lumina.security.api import Actor
    from lumina.security.models.users import User
    from lumina.security.services import rbac
    from lumina.security.services.tokens import token_create
    from lumina.security.services.users import user_create

    system = Actor.system("cli")
    email = "memory-bench@bench.invalid"
    user = User.objects.filter(email=email).first() if reuse else None
    if user is None:
        user = user_create(email=email, password=None)
        rbac.role_assignment_create(actor=system, role="Developer", user=str(user.pk))
    token = token_create(user_id=user.pk, actor=system, name="memory benchmark").secret
    connections.close_all()
    return database, token


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process and all its descendants, so far."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
    except psutil.Error:
        pass
    return total


def start_lumina(processes: Processes, database: str) -> tuple[int, int]:
    """Lumina serving on a free port: (port, pid)."""
    port = free_port()
    env = clean_env(ROOT)
    env.update(
        DATABASE_URL=database,
        DJANGO_SETTINGS_MODULE="config.settings",
        LUMINA_ADMIN_PASSWORD=secrets.token_urlsafe(18),
        LUMINA_MAX_REQUEST_BYTES=str(64 * 1024 * 1024),
    )
    command = [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = processes.start("lumina", command, env, cwd=ROOT)
    deadline = time.monotonic() + START_TIMEOUT
    while live_status(port) != 200:
        if process.poll() is not None:
            raise processes.failure("lumina", process, "exited before answering /health/live")
        if time.monotonic() > deadline:
            raise processes.failure("lumina", process, "never answered 200 on /health/live")
        time.sleep(0.05)
    return port, process.pid


def call(
    port: int, token: str, path: str, body: bytes | None, content_type: str = "application/json"
) -> tuple[int, dict]:
    """POST ``body`` to ``path``, or GET it when there is no body."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        method="GET" if body is None else "POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(request, timeout=3600) as answer:  # noqa: S310 (http, loopback)
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--listings", type=int, default=50, help="timed requests per listing")
    parser.add_argument("--keep", action="store_true", help="leave the database in place")
    parser.add_argument(
        "--reuse", action="store_true", help="search the database a --keep run left, no import"
    )
    args = parser.parse_args()

    lines = history(args.turns, args.seed)
    texts = [line["text"] for line in lines]
    logs = Path(tempfile.mkdtemp(prefix="lumina-memory-bench-"))
    processes = Processes(logs)
    socket_dir, held = None, False
    try:
        socket_dir, held = pgserver.attach()
        progress("preparing the database")
        database, token = prepare(socket_dir, reuse=args.reuse)
        if not args.reuse:
            progress(f"the embedder alone on {len(texts)} texts")
            rate, embed_cpu = embedder_rate(texts)
        progress("starting Lumina")
        port, pid = start_lumina(processes, database)
        if not args.reuse:
            import_history(port, token, lines, rate, embed_cpu, pid)
        search_questions(port, token, args, pid)
        list_records(port, token, args.listings)
    finally:
        processes.stop_all()
        if socket_dir is not None:
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
            if not args.keep:
                pgserver.recreate_database(socket_dir, DATABASE, create=False)
            if held:
                pgserver.release()
    print(
        f"{os.cpu_count()} CPUs shared by the client, Lumina and PostgreSQL; "
        f"1-min load average {os.getloadavg()[0]:.1f}; database {DATABASE} "
        + ("kept" if args.keep else "dropped")
    )


def import_history(
    port: int, token: str, lines: list[dict], rate: float, embed_cpu: float, pid: int
) -> None:
    """Wall time of the request, and the CPU it cost in Lumina's process and in
    PostgreSQL: on a shared machine the CPU per turn beside the embedder's CPU per
    sentence moves far less with the load than the two rates do."""
    body = ("\n".join(json.dumps(line) for line in lines) + "\n").encode()
    # Warm, as the embedder alone is timed: one search loads the model in the server.
    status, answer = call(port, token, "/api/v1/memory/search", b'{"query": "warm up"}')
    if status != 200:
        raise RuntimeError(f"the warm-up search answered {status}: {answer}")
    progress(f"importing {len(lines)} turns ({len(body) / 1e6:.1f} MB of JSONL)")
    postgres = pgserver.postmaster_info()
    lumina_cpu = cpu_seconds(pid)
    postgres_cpu = cpu_seconds(postgres[0]) if postgres else 0.0
    started = time.perf_counter()
    status, answer = call(port, token, "/api/v1/memory/import", body, "application/x-ndjson")
    seconds = time.perf_counter() - started
    lumina_cpu = cpu_seconds(pid) - lumina_cpu
    postgres_cpu = cpu_seconds(postgres[0]) - postgres_cpu if postgres else 0.0
    if status != 201:
        raise RuntimeError(f"import answered {status}: {answer}")
    turns_per_second = answer["imported"] / seconds
    ratio = turns_per_second / rate
    print(
        table(
            f"Import of {answer['imported']} dated turns in {answer['sessions']} sessions "
            "over HTTP (embed, extract and consolidate facts, write, index, graph, then the "
            "handlers after commit)",
            ("measure", "value", "target"),
            [
                (
                    "embedder alone (int8 MiniLM, batches of 256)",
                    f"{rate:,.0f} sentences/s",
                    "",
                ),
                ("import wall time", f"{seconds:.1f} s", ""),
                ("import", f"{turns_per_second:,.0f} turns/s", ""),
                ("facts added/updated/superseded", str(answer["facts"]), ""),
                ("import ÷ embedder", f"{ratio:.2f}", f"≥ {TARGET_RATIO}"),
                ("CPU per sentence, embedder alone", f"{embed_cpu * 1000:.2f} ms", ""),
                (
                    "CPU per turn, import (Lumina + PostgreSQL)",
                    f"{(lumina_cpu + postgres_cpu) / answer['imported'] * 1000:.2f} ms "
                    f"({lumina_cpu / answer['imported'] * 1000:.2f} + "
                    f"{postgres_cpu / answer['imported'] * 1000:.2f})",
                    "",
                ),
            ],
        ),
        end="\n\n",
        flush=True,
    )


def search_questions(port: int, token: str, args: argparse.Namespace, pid: int) -> None:
    """Latency from the client, and CPU per search in Lumina's process and in PostgreSQL
    (all its processes: nothing else uses this server meanwhile, if nothing else runs a
    benchmark on it), which a loaded machine inflates far less than the latency."""
    asked = questions(WARMUP + args.queries, args.seed)
    latencies = []
    hits = 0
    postgres = pgserver.postmaster_info()
    for index, question in enumerate(asked):
        if index == WARMUP:
            lumina_cpu = cpu_seconds(pid)
            postgres_cpu = cpu_seconds(postgres[0]) if postgres else 0.0
        payload = json.dumps({"query": question, "k": 10, "now": "2025-01-15T00:00:00Z"})
        started = time.perf_counter()
        status, answer = call(
            port, token, "/api/v1/memory/search", payload.encode(), "application/json"
        )
        elapsed = time.perf_counter() - started
        if status != 200:
            raise RuntimeError(f"search answered {status}: {answer}")
        if index >= WARMUP:
            latencies.append(elapsed)
            hits += len(answer["hits"])
    lumina_cpu = (cpu_seconds(pid) - lumina_cpu) / len(latencies) * 1000
    postgres_cpu = (
        (cpu_seconds(postgres[0]) - postgres_cpu) / len(latencies) * 1000 if postgres else 0.0
    )
    p50 = median(latencies) * 1000
    print(
        table(
            f"POST /api/v1/memory/search over HTTP (hybrid, k=10) on {args.turns} turns "
            f"and their facts: {len(latencies)} distinct questions after {WARMUP} warm-up",
            ("measure", "value", "target"),
            [
                ("median", f"{p50:.1f} ms", f"≤ {TARGET_P50_MS:g} ms"),
                ("p99", f"{p99(latencies) * 1000:.1f} ms", ""),
                ("hits per answer", f"{hits / len(latencies):.1f}", "10"),
                ("CPU per search, Lumina's process", f"{lumina_cpu:.1f} ms", ""),
                ("CPU per search, PostgreSQL", f"{postgres_cpu:.1f} ms", ""),
            ],
        ),
        end="\n\n",
    )


def list_records(port: int, token: str, listings: int) -> None:
    """The console's memory page (facts, first page of 50), and the first page of all."""
    rows = []
    for label, path in (
        (
            "facts (layer=semantic), page 1 of 50",
            "/api/v1/memory/records?layer=semantic&page_size=50",
        ),
        ("every layer, page 1 of 50", "/api/v1/memory/records?page_size=50"),
    ):
        latencies, count = [], 0
        for index in range(WARMUP // 4 + listings):
            started = time.perf_counter()
            status, answer = call(port, token, path, None)
            elapsed = time.perf_counter() - started
            if status != 200:
                raise RuntimeError(f"listing answered {status}: {answer}")
            count = answer["count"]
            if index >= WARMUP // 4:
                latencies.append(elapsed)
        rows.append(
            (
                f"{label} (count {count:,})",
                f"{median(latencies) * 1000:.1f} ms",
                f"{p99(latencies) * 1000:.1f} ms",
                f"≤ {TARGET_LIST_MS:g} ms",
            )
        )
    print(
        table(
            f"GET /api/v1/memory/records over HTTP, {listings} requests each",
            ("listing", "median", "p99", "target"),
            rows,
        ),
        end="\n\n",
    )


if __name__ == "__main__":
    main()
