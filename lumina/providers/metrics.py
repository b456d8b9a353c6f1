"""Prometheus metrics of the completion path, served on ``/metrics`` with the rest.

Label sets are small and bounded: provider and model names come from the registry,
never from what a client sent.
"""

from __future__ import annotations

import functools

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

# Latency buckets from 5 ms to 2 minutes: upstream calls dominate, and long generations
# must not all land in +Inf.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter(
    "lumina_provider_requests",
    "Requests through the completion path, by outcome.",
    ["operation", "provider", "model", "status"],
)
TOKENS = Counter(
    "lumina_provider_tokens",
    "Tokens used, by kind (input, cached_input, cache_write, output, reasoning).",
    ["provider", "model", "kind"],
)
COST = Counter("lumina_provider_cost_usd", "Money spent, in US dollars.", ["provider", "model"])
LATENCY = Histogram(
    "lumina_provider_request_seconds",
    "Whole-request latency as the client sees it.",
    ["operation", "provider", "model"],
    buckets=_LATENCY_BUCKETS,
)
TTFT = Histogram(
    "lumina_provider_ttft_seconds",
    "Time to the first streamed token.",
    ["provider", "model"],
    buckets=_LATENCY_BUCKETS,
)
OVERHEAD = Histogram(
    "lumina_gateway_overhead_seconds",
    "Time Lumina itself added to a request (total minus time waiting for providers).",
    ["operation"],
    buckets=(0.0005, 0.001, 0.002, 0.004, 0.008, 0.015, 0.03, 0.06, 0.125, 0.25),
)
IN_FLIGHT = Gauge("lumina_provider_in_flight", "Requests being served.", ["operation"])
ATTEMPTS = Counter(
    "lumina_provider_attempts",
    "Calls to providers, including retries and fallbacks, by outcome.",
    ["provider", "model", "outcome"],
)


@functools.cache
def labelled(metric: MetricWrapperBase, *values: str) -> MetricWrapperBase:
    """``metric.labels(*values)``, looked up once per label set: ``labels()`` checks and
    converts its arguments under a lock on every call, several times per request."""
    return metric.labels(*values)
