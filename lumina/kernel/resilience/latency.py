"""Latency statistics per key: EWMAs of latency, time to first item and error rate.

In process, read by whoever prefers the fastest or healthiest target (the providers'
``fastest`` and ``balanced`` strategies). Updates race benignly between threads (a lost
sample at worst): these steer a preference, they are not accounting.
"""

from __future__ import annotations

from collections.abc import Hashable

from django.conf import settings

DEFAULT_ALPHA = 0.2


class LatencyEntry:
    """One key's statistics: EWMAs in milliseconds (None until measured), the error rate's
    EWMA (0–1) and the number of calls seen. Live: read, do not write."""

    __slots__ = ("errors", "latency", "samples", "ttft")

    def __init__(self) -> None:
        self.latency: float | None = None
        self.ttft: float | None = None
        self.errors = 0.0
        self.samples = 0


class LatencyStats:
    def __init__(self, *, alpha: float | None = None) -> None:
        configured = getattr(settings, "LUMINA_LATENCY_ALPHA", None)
        self.alpha = float(
            alpha
            if alpha is not None
            else (configured if configured is not None else DEFAULT_ALPHA)
        )
        self._stats: dict[Hashable, LatencyEntry] = {}

    def record(
        self,
        key: Hashable,
        latency_ms: float | None,
        ttft_ms: float | None = None,
        ok: bool = True,
    ) -> None:
        """One call's outcome. A failed call moves only the error rate: a fast error must
        not make a target look fast."""
        stat = self._stats.get(key)
        if stat is None:
            stat = self._stats[key] = LatencyEntry()
        a = self.alpha
        stat.samples += 1
        stat.errors += a * ((0.0 if ok else 1.0) - stat.errors)
        if not ok:
            return
        if latency_ms is not None:
            stat.latency = (
                latency_ms
                if stat.latency is None
                else stat.latency + a * (latency_ms - stat.latency)
            )
        if ttft_ms is not None:
            stat.ttft = ttft_ms if stat.ttft is None else stat.ttft + a * (ttft_ms - stat.ttft)

    def seed(self, key: Hashable, latency_ms: float | None, ttft_ms: float | None = None) -> None:
        """Start from a probe's measurement, unless real traffic already taught us more."""
        stat = self._stats.get(key)
        if stat is None:
            stat = self._stats[key] = LatencyEntry()
        if stat.latency is None and latency_ms is not None:
            stat.latency = float(latency_ms)
        if stat.ttft is None and ttft_ms is not None:
            stat.ttft = float(ttft_ms)

    def latency_ms(self, key: Hashable) -> float | None:
        stat = self._stats.get(key)
        return None if stat is None else stat.latency

    def ttft_ms(self, key: Hashable) -> float | None:
        stat = self._stats.get(key)
        return None if stat is None else stat.ttft

    def error_rate(self, key: Hashable) -> float:
        stat = self._stats.get(key)
        return 0.0 if stat is None else stat.errors

    def get(self, key: Hashable) -> LatencyEntry | None:
        """All of a key's statistics in one look-up."""
        return self._stats.get(key)

    def clear(self) -> None:
        self._stats.clear()
