"""In-process steps every model request pays, each timed alone: no database, no network.

Prints one table (step, median µs, p90 µs, p99 µs, iterations) for:

* counting a prompt's tokens (``providers.tokens.count_message_tokens``, tiktoken
  ``cl100k_base``) for a one-line message and for a 4 KiB one;
* ranking ten deployments (``providers.selectors.selection.rank``) by ``balanced`` and
  by ``cheapest``, with an estimate of the request's tokens, as ``lumina/auto`` does;
* queueing one request's usage for the ledger (``services.usage.usage_submit``, the
  writer thread kept off so nothing is written).

Each step is warmed with 200 calls, then timed call by call with ``time.perf_counter_ns``.
These figures used to be asserted in functional tests; they belong here, where a slow
machine makes a slow row rather than a failed build.

    .venv/bin/python benchmarks/hot_path.py          # a few seconds
"""

from __future__ import annotations

import argparse
import os
import statistics
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

WARMUP = 200


def measure(call: Callable[[], Any], iterations: int) -> tuple[float, float, float]:
    for _ in range(WARMUP):
        call()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(iterations):
        started = clock()
        call()
        samples.append(clock() - started)
    samples.sort()

    def at(fraction: float) -> float:
        return samples[min(len(samples) - 1, int(fraction * len(samples)))] / 1000

    return statistics.median(samples) / 1000, at(0.90), at(0.99)


def deployments(count: int) -> list[Any]:
    from lumina.providers.types import Capability, DeploymentDTO, Prices, ProviderDTO, ProviderKind

    rows = []
    for index in range(count):
        provider = ProviderDTO(
            id=uuid.uuid4(),
            name=f"provider-{index}",
            kind=ProviderKind.OPENAI_COMPATIBLE,
            base_url=f"http://127.0.0.1:9/{index}/v1",
            has_api_key=True,
            priority=index % 3,
        )
        rows.append(
            DeploymentDTO(
                id=uuid.uuid4(),
                provider=provider,
                name=f"model-{index}",
                upstream_model=f"model-{index}",
                capabilities=frozenset({Capability.CHAT, Capability.STREAMING}),
                context_window=128_000,
                prices=Prices(input=Decimal("0.15") * (index + 1), output=Decimal("0.6")),
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--iterations", type=int, default=20_000)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.utils import timezone

    from lumina.providers.selectors.selection import rank
    from lumina.providers.services import usage
    from lumina.providers.tokens import count_message_tokens
    from lumina.providers.types import Needs, Strategy, Usage, UsageEntry, UsageStatus

    settings.LUMINA_USAGE_WRITER_THREAD = False
    short = [{"role": "user", "content": "Explain TCP versus UDP in two sentences, please."}]
    long = [{"role": "user", "content": "The quick brown fox jumps over the lazy dog. " * 91}]
    pool = deployments(10)
    balanced = Needs(estimated_input_tokens=500, estimated_output_tokens=200)
    cheapest = Needs(
        strategy=Strategy.CHEAPEST, estimated_input_tokens=500, estimated_output_tokens=200
    )
    entry = UsageEntry(
        id=uuid.uuid4(),
        occurred_at=timezone.now(),
        request_id="bench",
        operation="chat",
        status=UsageStatus.OK,
        stream=False,
        requested_model="lumina/auto",
        usage=Usage(input_tokens=500, output_tokens=200),
        cost=Decimal("0.0002"),
        model="model-0",
        provider_id=pool[0].provider.id,
        provider_name=pool[0].provider.name,
        deployment_id=pool[0].id,
    )

    def submit() -> None:
        usage.usage_submit(entry)
        if len(usage._buffer) > 10_000:
            usage._buffer.clear()

    steps: list[tuple[str, Callable[[], Any]]] = [
        ("count tokens, one-line message", lambda: count_message_tokens(short)),
        ("count tokens, 4 KiB message", lambda: count_message_tokens(long)),
        ("rank 10 deployments, balanced", lambda: rank(deployments=pool, needs=balanced)),
        ("rank 10 deployments, cheapest", lambda: rank(deployments=pool, needs=cheapest)),
        ("usage_submit (buffer only)", submit),
    ]
    print(f"{'step':<34} {'median µs':>10} {'p90 µs':>8} {'p99 µs':>8} {'iterations':>11}")
    for name, call in steps:
        median, p90, p99 = measure(call, args.iterations)
        print(f"{name:<34} {median:>10.2f} {p90:>8.2f} {p99:>8.2f} {args.iterations:>11,}")
    usage._buffer.clear()


if __name__ == "__main__":
    main()
