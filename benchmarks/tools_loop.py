"""What the function-calling loop adds to the model calls it makes.

Against the loopback OpenAI upstream of the tests (in a thread of this process, answering
at once), each round runs, interleaved:

* model only: two ``providers.api.complete`` calls, the same two requests a one-call run
  sends (the question with the tool offered; then with the call and its result);
* loop: ``tools.api.run_with_tools`` with one builtin tool (``text_stats``) that the model
  calls once, then answers: two model turns, one execution (authorised, validated, stored,
  ToolExecuted published), the result truncated and fed back;
* loop, 4 parallel calls: the model asks for four calls in one turn, run side by side.

The loop's own cost is its median minus the model-only median. Median and p95 in ms.
Runs against a database of its own, ``lumina_bench_tools_loop`` on the embedded PostgreSQL
(re-created, dropped at the end).

    .venv/bin/python benchmarks/tools_loop.py [--rounds 60]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import logging
import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._support import pgserver  # noqa: E402
from benchmarks._support.stats import table  # noqa: E402

DATABASE = "lumina_bench_tools_loop"
QUESTION = [{"role": "user", "content": "How many words in 'a b c'?"}]


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def prepare(socket_dir: str) -> None:
    pgserver.recreate_database(socket_dir, DATABASE)
    for key in [key for key in os.environ if key.startswith(("LUMINA_", "CELERY_"))]:
        if key != "LUMINA_DATA_DIR":
            del os.environ[key]
    os.environ.pop("REDIS_URL", None)
    os.environ.update(
        DATABASE_URL=pgserver.database_url(socket_dir, DATABASE),
        DJANGO_SETTINGS_MODULE="config.settings",
        LUMINA_MASTER_KEYS="1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        LUMINA_OUTBOUND_ALLOW="127.0.0.0/8",
    )
    import django

    django.setup()
    from django.core.management import call_command

    logging.disable(logging.WARNING)
    call_command("migrate", interactive=False, verbosity=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    rounds = parser.parse_args().rounds
    socket_dir, held = pgserver.attach()
    server = None
    try:
        prepare(socket_dir)
        from lumina.providers.api import complete
        from lumina.providers.models.registry import Deployment, Provider
        from lumina.providers.selectors.registry import catalogue_invalidate
        from lumina.providers.services.usage import usage_writer_stop
        from lumina.security.api import Actor
        from lumina.tools.api import run_with_tools
        from lumina.tools.services.registry import tool_create
        from tests.providers.upstreams import openai
        from tests.providers.upstreams.base import UpstreamServer

        server = UpstreamServer(openai.build_app, base_path=openai.BASE_PATH, record=False)
        server.start()
        provider = Provider.objects.create(
            name="bench", kind="openai_compatible", base_url=server.url
        )
        Deployment.objects.create(
            provider=provider, name="bench-model", upstream_model="m",
            capabilities=["chat", "tools"], context_window=128_000,
        )  # fmt: skip
        catalogue_invalidate()
        system = Actor.system("bench")
        tool = tool_create(actor=system, name="stats", kind="builtin", builtin_name="text_stats")
        offered = [tool.openai()]
        script = server.script

        def model_only() -> None:
            complete(QUESTION, actor=system, model="bench-model", tools=offered)
            follow_up = [
                *QUESTION,
                {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1",
                 "type": "function", "function": {"name": "stats", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": '{"words": 3}'},
            ]  # fmt: skip
            complete(follow_up, actor=system, model="bench-model", tools=offered)

        def loop(calls: int) -> Callable[[], None]:
            def run() -> None:
                script.tool_turns = [[("stats", {"text": "a b c"})] * calls]
                result = run_with_tools(QUESTION, ["stats"], "bench-model", actor=system)
                if result.stopped != "answer" or len(result.steps[0].tool_calls) != calls:
                    raise SystemExit(f"unexpected run: {result.stopped}")

            return run

        paths = {
            "model only: 2 completions": model_only,
            "loop: 1 call, 2 turns": loop(1),
            "loop: 4 parallel calls, 2 turns": loop(4),
        }
        samples: dict[str, list[float]] = {name: [] for name in paths}
        for round_ in range(rounds + 5):
            for name, call in paths.items():
                started = time.perf_counter()
                call()
                if round_ >= 5:  # warm-up rounds are not counted
                    samples[name].append((time.perf_counter() - started) * 1000)
        usage_writer_stop(flush=False)
    finally:
        if server is not None:
            server.stop()
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        pgserver.recreate_database(socket_dir, DATABASE, create=False)
        if held:
            pgserver.release()

    base = statistics.median(samples["model only: 2 completions"])
    rows = [
        (name, f"{statistics.median(values):.2f}", f"{p95(values):.2f}",
         "-" if name.startswith("model") else f"{statistics.median(values) - base:+.2f}")
        for name, values in samples.items()
    ]  # fmt: skip
    print(table(f"Function-calling loop, {rounds} interleaved rounds (ms)",
                ("path", "median", "p95", "loop cost"), rows))  # fmt: skip


if __name__ == "__main__":
    main()
