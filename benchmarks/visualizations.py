"""What rendering a chart costs with 100,000 usage rows in the ledger.

Seeds the raw usage ledger with ``--rows`` requests (default 100,000) of 20 users over the
last 30 days (five models on three providers, 3 % errors, latencies and TTFTs drawn from a
seeded generator), rebuilds the daily rollups from them (``costs_rebuild``), then times:

* the Vega-Lite schema: reading altair's 1.9 MB ``vega-lite-schema.json`` and the first
  check (once per process), then checking a spec not seen before (the schema walk) and
  one seen before (the remembered answer, what every render of a saved chart pays);
* ``ui.api.template_render`` of each built-in chart (check the spec, read the source
  through providers' or tools' api, fill the dataset) as a Developer (their own rows: a
  twentieth of the ledger) and as an Admin (everyone's);
* the same over HTTP, ``GET /api/v1/visualizations/templates/<key>/render`` through
  Django's test client (authentication, every middleware, DRF, JSON rendering) as the
  Developer.

Each operation is warmed up, then timed ``--iterations`` times one by one; median and p99
in ms. Usage charts read the daily cost rollups; latency and error charts the daily request
rollup and its latency histograms (ADR 0033): none reads the raw ledger.

It works in a database of its own, ``lumina_bench_visualizations``, on the embedded
PostgreSQL server (dropped and re-created at start, dropped at the end). The machine is
shared with other work: the load average is printed at the start and the end.

    .venv/bin/python benchmarks/visualizations.py                # about a minute
    .venv/bin/python benchmarks/visualizations.py --rows 10000   # quicker

``seed_usage`` and ``render_timings`` are reused by ``benchmarks/console.py``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._support import pgserver  # noqa: E402
from benchmarks._support.stats import median, ms, p99, table  # noqa: E402

PGDATA = Path(os.environ.get("LUMINA_DATA_DIR") or ROOT / "var") / "pgdata"
DATABASE = "lumina_bench_visualizations"
USERS = 20
DAYS = 30
MODELS = (
    ("openai", "gpt-4o-mini", Decimal("0.0004")),
    ("openai", "gpt-4o", Decimal("0.006")),
    ("anthropic", "claude-sonnet-4", Decimal("0.009")),
    ("anthropic", "claude-haiku-4", Decimal("0.001")),
    ("local", "llama3.1-8b", Decimal("0")),
)
SEED = 1324


def seed_usage(*, rows: int, user_ids: list[uuid.UUID], seed: int = SEED) -> None:
    """``rows`` ledger rows over the last ``DAYS`` days, then the rollups rebuilt."""
    from django.db import transaction

    from lumina.providers.models.usage import UsageRecord
    from lumina.providers.services.costs import costs_rebuild
    from lumina.providers.services.usage import usage_partition_ensure

    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(days=DAYS - 1)
    month = start.date().replace(day=1)
    while month <= now.date():
        usage_partition_ensure(month=month)
        month = (month + dt.timedelta(days=32)).replace(day=1)
    providers = {name: uuid.uuid4() for name, _, _ in MODELS}
    batch: list[UsageRecord] = []
    for _ in range(rows):
        provider, model, price = rng.choice(MODELS)
        failed = rng.random() < 0.03
        stream = rng.random() < 0.5
        latency = rng.lognormvariate(6.0, 0.6)  # ~400 ms median
        tokens_in, tokens_out = rng.randint(50, 4000), rng.randint(10, 800)
        batch.append(
            UsageRecord(
                occurred_at=start + dt.timedelta(seconds=rng.uniform(0, DAYS * 86_400 - 60)),
                operation="chat",
                status="error" if failed else "ok",
                stream=stream,
                requested_model=model,
                user_id=rng.choice(user_ids),
                provider_id=providers[provider],
                provider_name=provider,
                model=model,
                input_tokens=tokens_in,
                output_tokens=0 if failed else tokens_out,
                cost=Decimal(0) if failed else price * (tokens_in + 4 * tokens_out) / 1000,
                latency_ms=latency,
                ttft_ms=latency * rng.uniform(0.1, 0.4) if stream and not failed else None,
                error_code="upstream_error" if failed else "",
            )
        )
        if len(batch) == 5_000:
            with transaction.atomic():
                UsageRecord.objects.bulk_create(batch)
            batch.clear()
    if batch:
        with transaction.atomic():
            UsageRecord.objects.bulk_create(batch)
    costs_rebuild()


def timed(call: Callable[[], Any], *, iterations: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def render_timings(
    *, developer: Any, admin: Any, iterations: int
) -> list[tuple[str, list[float], int]]:
    """(operation, samples in seconds, dataset rows) for each template, as both users,
    through ``ui.api`` and over HTTP."""
    from rest_framework.test import APIClient

    from lumina.security.api import Actor
    from lumina.ui import api as ui_api

    results = []
    as_developer, as_admin = Actor.for_user(developer), Actor.for_user(admin)
    for template in ui_api.templates_list(actor=as_admin):
        for label, actor in (("Developer", as_developer), ("Admin", as_admin)):
            rendered = ui_api.template_render(actor=actor, key=template.key)
            samples = timed(
                lambda key=template.key, a=actor: ui_api.template_render(actor=a, key=key),
                iterations=iterations,
            )
            source_rows = sum(rendered.rows.values())
            results.append((f"ui.api {template.key}, {label}", samples, source_rows))
    client = APIClient()
    client.force_authenticate(developer)
    for key in ("cost_by_day", "latency_percentiles"):
        url = f"/api/v1/visualizations/templates/{key}/render"
        response = client.get(url)
        assert response.status_code == 200, response.content
        rows = sum(response.json()["rows"].values())
        samples = timed(lambda url=url: client.get(url), iterations=iterations)
        results.append((f"HTTP GET …/templates/{key}/render, Developer", samples, rows))
    return results


def schema_timings(iterations: int) -> list[tuple[str, list[float], int]]:
    from lumina.ui import vegalite
    from lumina.ui.selectors.visualization_templates import TEMPLATES
    from lumina.ui.services.visualizations import spec_prepare

    spec = TEMPLATES["latency_percentiles"].spec_copy()
    started = time.perf_counter()
    vegalite.schema()
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    spec_prepare(spec)
    first = time.perf_counter() - started
    counter = iter(range(10**9))

    def fresh() -> None:
        # A title never seen before: the schema walk runs, nothing is remembered.
        spec_prepare({**spec, "title": f"chart {next(counter)}"})

    walked = timed(fresh, iterations=max(iterations, 200))
    remembered = timed(lambda: spec_prepare(spec), iterations=max(iterations, 200))
    return [
        ("schema: read and parse vega-lite-schema.json (once)", [loaded], 0),
        ("schema: first check (refs resolved, once)", [first], 0),
        ("schema: check a spec not seen before", walked, 0),
        ("schema: check a spec seen before (remembered)", remembered, 0),
    ]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=100_000, help="usage rows to seed")
    parser.add_argument("--iterations", type=int, default=30, help="timed calls each")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
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
    started, load_at_start = time.monotonic(), os.getloadavg()[0]
    try:
        call_command("migrate", interactive=False, verbosity=0)
        users = [User.objects.create_user(f"u{i}@bench.example", None) for i in range(USERS)]
        developer, admin = users[0], User.objects.create_user("admin@bench.example", None)
        RoleAssignment.objects.create(role=Role.objects.get(name="Developer"), user=developer)
        RoleAssignment.objects.create(role=Role.objects.get(name="Admin"), user=admin)
        seeding = time.perf_counter()
        seed_usage(rows=args.rows, user_ids=[user.pk for user in users])
        seeded = time.perf_counter() - seeding
        results = schema_timings(args.iterations)
        results += render_timings(developer=developer, admin=admin, iterations=args.iterations)
    finally:
        connections.close_all()
        pgserver.recreate_database(socket_dir, DATABASE, create=False)
    rows = [
        (name, ms(median(samples)), ms(p99(samples)), str(len(samples)), f"{count:,}")
        for name, samples, count in results
    ]
    print(
        table(
            f"Rendering charts over {args.rows:,} usage rows ({USERS} users, {DAYS} days)",
            ("operation", "median ms", "p99 ms", "n", "dataset rows"),
            rows,
        )
    )
    print(
        f"\nseeding took {seeded:.0f}s; {os.cpu_count()} CPUs; 1-min load average"
        f" {load_at_start:.1f} at start, {os.getloadavg()[0]:.1f} at end;"
        f" {time.monotonic() - started:.0f}s in all; database {DATABASE} dropped"
    )


if __name__ == "__main__":
    main()
