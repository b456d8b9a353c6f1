"""Log-spaced latency histograms: the buckets the daily request rollup counts in, and
percentiles read back from the counts (ADR 0033).

Bucket 0 holds [0, 1) ms; bucket ``i`` (1…160) holds [2^((i-1)/8), 2^(i/8)) ms; bucket 161
holds 2^20 ms (about 17.5 minutes) and more. Eight buckets per doubling make every bucket
at most 2^(1/8) ≈ 1.0905 times as wide at its top as at its bottom, so a percentile read
from the counts is within 9.1 % of the exact one (within 1 ms below 1 ms). PostgreSQL's
``width_bucket(value, BOUNDS)`` and ``bisect_right(BOUNDS, value)`` place a value in the
same bucket (both count the bounds at or below it), so the live projection (Python) and
the rebuild (SQL) agree to the request.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence

STEPS_PER_DOUBLING = 8
DOUBLINGS = 20
# Lower bounds of buckets 1…161 (bucket 0 is everything below the first).
BOUNDS: tuple[float, ...] = tuple(
    2 ** (i / STEPS_PER_DOUBLING) for i in range(STEPS_PER_DOUBLING * DOUBLINGS + 1)
)
BUCKETS = len(BOUNDS) + 1
MAX_RELATIVE_ERROR = 2 ** (1 / STEPS_PER_DOUBLING) - 1


def bucket_of(milliseconds: float) -> int:
    return bisect.bisect_right(BOUNDS, milliseconds)


def histogram(values: Iterable[float | None]) -> list[int]:
    """Counts per bucket of ``values`` (None is left out: a request without a TTFT)."""
    counts = [0] * BUCKETS
    for value in values:
        if value is not None:
            counts[bucket_of(value)] += 1
    return counts


def _sample(bucket: int, rank_in_bucket: int, count: int) -> float:
    """Where the ``rank_in_bucket``-th of ``count`` values of a bucket most likely lies:
    spread evenly over the bucket, on a log scale (the buckets' own)."""
    fraction = (rank_in_bucket + 0.5) / count
    if bucket == 0:
        return BOUNDS[0] * fraction
    low = BOUNDS[bucket - 1]
    if bucket == len(BOUNDS):
        return low  # the open-ended last bucket: at least this much
    return low * (BOUNDS[bucket] / low) ** fraction


def percentiles(counts: Mapping[int, int], fractions: Sequence[float]) -> list[float | None]:
    """Estimates of ``percentile_cont(fraction)`` of the values counted in ``counts``
    (bucket -> count): the value at rank ``fraction * (n - 1)``, interpolated between the
    estimates of its two neighbouring values, as PostgreSQL interpolates between values."""
    buckets = sorted((b, c) for b, c in counts.items() if c > 0)
    total = sum(c for _, c in buckets)
    if not total:
        return [None] * len(fractions)

    def value_at(rank: int) -> float:
        seen = 0
        for bucket, count in buckets:
            if rank < seen + count:
                return _sample(bucket, rank - seen, count)
            seen += count
        raise AssertionError("rank beyond the counts")  # pragma: no cover

    found: list[float | None] = []
    for fraction in fractions:
        rank = fraction * (total - 1)
        below, above = math.floor(rank), math.ceil(rank)
        low = value_at(below)
        found.append(low if above == below else low + (rank - below) * (value_at(above) - low))
    return found
