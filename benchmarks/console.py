"""Server time of each console page, and the JavaScript each page loads.

Seeds ``--rows`` usage rows (default 100,000; 20 users over 30 days, through
``benchmarks.visualizations.seed_usage``) and ``--memories`` memory records of the signed-in
Developer (default 10,000: turns and facts with unit vectors, written directly), plus a
provider with models, API tokens and tools. Then, through Django's test client with a
session (every middleware, the session and CSRF machinery, template rendering, DRF):

* ``page``: the page's HTML, what the server does before the browser runs anything (for
  the dashboard, every chart's data and the budgets; for providers, every model's routing
  state; for memory, the pinned blocks and the graph; for tools, the list and the run form);
* ``page + reads``: the page and every REST read its script makes on load, one after the
  other (the browser sends them in parallel, so this is the server's total, not latency).

Each is warmed up, then timed ``--iterations`` times; median and p99 in ms. The target is a
median of at most 50 ms per page. Last, the bytes of JavaScript and CSS each page loads
(its entry and the shared chunks, from the build's manifest), raw and gzip-compressed.

It works in a database of its own, ``lumina_bench_console``, on the embedded PostgreSQL
server (dropped and re-created at start, dropped at the end). The machine is shared with
other work: the load average is printed at the start and the end. Needs ``make console``.

    .venv/bin/python benchmarks/console.py                    # a few minutes
    .venv/bin/python benchmarks/console.py --rows 10000 --memories 1000
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import random
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._support import pgserver  # noqa: E402
from benchmarks._support.stats import median, ms, p99, table  # noqa: E402
from benchmarks.visualizations import USERS, seed_usage, timed  # noqa: E402

PGDATA = Path(os.environ.get("LUMINA_DATA_DIR") or ROOT / "var") / "pgdata"
DATABASE = "lumina_bench_console"
STATIC = ROOT / "lumina" / "ui" / "static" / "console"
SEED = 2512
WORDS = [
    "Lisbon",
    "Porto",
    "Helix",
    "Vim",
    "Acme",
    "robots",
    "tea",
    "coffee",
    "Ada",
    "Grace",
    "Linus",
    "Rust",
    "Python",
    "chess",
    "piano",
    "sailing",
    "hiking",
    "Berlin",
    "Tokyo",
    "Kyoto",
    "ramen",
    "sushi",
    "budget",
    "invoice",
    "travel",
]


def seed_memories(*, owner_id: uuid.UUID, count: int) -> None:
    """``count`` records of one owner: nine turns in ten, one fact in ten (with a history)."""
    import math

    from django.db import transaction

    from lumina.memory.models.records import EMBEDDING_DIMENSIONS, MemoryRecord

    rng = random.Random(SEED)
    now = dt.datetime.now(dt.UTC)
    batch: list[MemoryRecord] = []
    for i in range(count):
        vector = [rng.gauss(0, 1) for _ in range(EMBEDDING_DIMENSIONS)]
        norm = math.sqrt(sum(v * v for v in vector))
        text = " ".join(rng.choice(WORDS) for _ in range(12))
        fact = i % 10 == 0
        batch.append(
            MemoryRecord(
                owner_id=owner_id,
                session_id=f"s{i // 50}",
                layer="semantic" if fact else "working",
                speaker="" if fact else "user",
                text=text,
                label=text.split()[0] if fact else "",
                fact_key=f"user|attribute{i % 500}" if fact else "",
                embedding=[v / norm for v in vector],
                occurred_at=now - dt.timedelta(minutes=i),
                valid_from=now - dt.timedelta(days=i % 90) if fact else None,
                extracted_by="rules" if fact else "",
            )
        )
        if len(batch) == 2_000:
            with transaction.atomic():
                MemoryRecord.objects.bulk_create(batch)
            batch.clear()
    if batch:
        with transaction.atomic():
            MemoryRecord.objects.bulk_create(batch)


def seed_rest(developer) -> list[str]:
    """A provider with three models, tokens, tools and a pinned block; the provider ids."""
    from lumina.memory.api import pinned_create
    from lumina.providers.models.registry import Deployment, Provider
    from lumina.providers.selectors.registry import catalogue_invalidate
    from lumina.security.api import Actor
    from lumina.security.services.tokens import token_create
    from lumina.tools.services.registry import tool_create

    system = Actor.system("benchmarks")
    provider = Provider.objects.create(
        name="bench-openai", kind="openai", base_url="http://127.0.0.1:9/v1"
    )
    for name in ("gpt-4o-mini", "gpt-4o", "o4-mini"):
        Deployment.objects.create(
            provider=provider, name=name, upstream_model=name, capabilities=["chat"],
            context_window=128_000, input_price="0.15", output_price="0.60",
        )  # fmt: skip
    catalogue_invalidate()
    for i in range(10):
        token_create(user_id=developer.pk, actor=system, name=f"token {i}")
    for builtin in ("text_stats", "time_now"):
        tool_create(actor=system, name=builtin, kind="builtin", builtin_name=builtin)
    actor = Actor.for_user(developer, mfa_verified=True)
    pinned_create(actor=actor, label="persona", text="Answers briefly.")
    return [str(provider.pk)]


def page_reads(provider_ids: list[str]) -> dict[str, list[tuple[str, str, dict | None]]]:
    """What each page's script reads on load (frontend/src/<page>.js): (method, url, body).

    The dashboard's charts and budgets, the providers with their models' routing state,
    the tokens with their budgets, the tools' run form and memory's search, pinned blocks
    and graph are rendered into the page by the server, so they are in ``page``."""
    return {
        "dashboard": [],
        "playground": [],
        "providers": [],
        "tokens": [],
        "tools": [("GET", "/api/v1/tools/results?page_size=20", None)],
        "memory": [("GET", "/api/v1/memory/records?layer=semantic&page_size=50", None)],
        "documents": [("GET", "/api/v1/documents", None)],
    }


def page_timings(developer, provider_ids: list[str], iterations: int) -> list[tuple]:
    from django.test import Client

    client = Client()
    client.force_login(developer)
    reads = page_reads(provider_ids)
    results = []
    for page, calls in reads.items():
        path = "/console/" if page == "dashboard" else f"/console/{page}/"

        def load_page(path: str = path) -> None:
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)

        def load_all(calls=calls, load_page=load_page) -> None:
            load_page()
            for method, url, body in calls:
                if method == "GET":
                    response = client.get(url)
                else:
                    response = client.post(url, json.dumps(body), content_type="application/json")
                assert response.status_code == 200, (url, response.status_code, response.content)

        results.append((page, timed(load_page, iterations=iterations),
                        timed(load_all, iterations=iterations), len(calls)))  # fmt: skip
    return results


def read_timings(developer, provider_ids: list[str], iterations: int) -> list[tuple]:
    """Each read on its own: which one a page's total comes from."""
    from django.test import Client

    client = Client()
    client.force_login(developer)
    rows = []
    for page, calls in page_reads(provider_ids).items():
        for method, url, body in calls:

            def read(method=method, url=url, body=body) -> None:
                if method == "GET":
                    client.get(url)
                else:
                    client.post(url, json.dumps(body), content_type="application/json")

            rows.append((page, f"{method} {url}", timed(read, iterations=iterations)))
    return rows


def bundle_sizes() -> list[tuple[str, str, str]]:
    manifest = json.loads((STATIC / "manifest.json").read_text())
    css = (STATIC / "console.css").read_bytes()
    rows = []
    for page, files in manifest.items():
        contents = [(STATIC / name).read_bytes() for name in files]
        raw = sum(len(c) for c in contents)
        packed = sum(len(gzip.compress(c, 9)) for c in contents)
        rows.append((page, f"{len(files)}", f"{raw:,}", f"{packed:,}",
                     f"{len(gzip.compress(css, 9)):,}"))  # fmt: skip
    return rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=100_000, help="usage rows to seed")
    parser.add_argument("--memories", type=int, default=10_000, help="memory records to seed")
    parser.add_argument("--iterations", type=int, default=30, help="timed loads each")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if not (STATIC / "manifest.json").exists():
        sys.exit("The console's bundles are missing: run `make console` first.")
    from config.embedded_postgres import ensure_server

    socket_dir = ensure_server(PGDATA)
    pgserver.recreate_database(socket_dir, DATABASE)
    for key in [key for key in os.environ if key.startswith(("LUMINA_", "CELERY_"))]:
        if key != "LUMINA_DATA_DIR":
            del os.environ[key]
    os.environ.pop("REDIS_URL", None)
    os.environ.update(
        DATABASE_URL=pgserver.database_url(socket_dir, DATABASE),
        LUMINA_EVENT_TRANSPORT="inprocess",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    import logging

    import django

    django.setup()
    logging.disable(logging.INFO)  # the access log is not what is measured here
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    from lumina.security.models.rbac import Role, RoleAssignment
    from lumina.security.models.users import User

    settings.ALLOWED_HOSTS = ["testserver"]
    settings.LUMINA_USAGE_WRITER_THREAD = False
    started, load_at_start = time.monotonic(), os.getloadavg()[0]
    try:
        call_command("migrate", interactive=False, verbosity=0)
        users = [User.objects.create_user(f"u{i}@bench.example", None) for i in range(USERS)]
        developer = users[0]
        RoleAssignment.objects.create(role=Role.objects.get(name="Developer"), user=developer)
        seeding = time.perf_counter()
        seed_usage(rows=args.rows, user_ids=[user.pk for user in users])
        seed_memories(owner_id=developer.pk, count=args.memories)
        provider_ids = seed_rest(developer)
        seeded = time.perf_counter() - seeding
        results = page_timings(developer, provider_ids, args.iterations)
        reads = read_timings(developer, provider_ids, args.iterations)
    finally:
        from lumina.providers.services.usage import usage_writer_stop

        usage_writer_stop(flush=True)  # the embeddings' usage, while the database exists
        connections.close_all()
        pgserver.recreate_database(socket_dir, DATABASE, create=False)
    rows = [
        (page, ms(median(alone)), ms(p99(alone)), ms(median(full)), ms(p99(full)), str(reads))
        for page, alone, full, reads in results
    ]
    print(
        table(
            f"Console pages, server time ({args.rows:,} usage rows, {args.memories:,} memories,"
            f" {args.iterations} loads each)",
            (
                "page",
                "page median ms",
                "page p99 ms",
                "+reads median ms",
                "+reads p99 ms",
                "reads",
            ),
            rows,
        )
    )
    print()
    print(
        table(
            "Each read on its own",
            ("page", "read", "median ms", "p99 ms"),
            [(page, read, ms(median(s)), ms(p99(s))) for page, read, s in reads],
        )
    )
    print()
    print(
        table(
            "JavaScript each page loads (entry + shared chunks), and the one stylesheet",
            ("page", "files", "JS bytes", "JS gzip bytes", "CSS gzip bytes"),
            bundle_sizes(),
        )
    )
    print(
        f"\nseeding took {seeded:.0f}s; {os.cpu_count()} CPUs; 1-min load average"
        f" {load_at_start:.1f} at start, {os.getloadavg()[0]:.1f} at end;"
        f" {time.monotonic() - started:.0f}s in all; database {DATABASE} dropped"
    )


if __name__ == "__main__":
    main()
