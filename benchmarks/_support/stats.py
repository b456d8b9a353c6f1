"""Percentiles and plain-text tables, as every benchmark prints them."""

from __future__ import annotations

import math
import statistics


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def p99(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else math.nan
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def ms(seconds: float) -> str:
    """Seconds as milliseconds with two decimals; "–" for no value."""
    return "–" if math.isnan(seconds) else f"{seconds * 1000:,.2f}"


def num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def table(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """A title, a header, a rule and the rows; the first column left-aligned, others right."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def render(cells: tuple[str, ...]) -> str:
        first, *rest = cells
        out = [first.ljust(widths[0])]
        out += [cell.rjust(width) for cell, width in zip(rest, widths[1:], strict=True)]
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([title, render(header), rule, *(render(row) for row in rows)])
