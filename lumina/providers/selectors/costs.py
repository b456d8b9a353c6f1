"""Cost reads: reports from the daily rollups (never the raw ledger), and the raw ledger itself.

``cost_report`` and ``usage_spent`` read only ``DailyUsage``; ``usage_list`` is the one
read of raw rows, for debugging and the admin, always bounded by a time range.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Sequence
from decimal import Decimal

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import Coalesce

from lumina.kernel.errors import ApplicationError
from lumina.providers.models.usage import DailyUsage, UsageRecord

# What a report may be grouped by, and the rollup columns each stands for.
GROUPS: dict[str, tuple[str, ...]] = {
    "user": ("user_id",),
    "token": ("token_id",),
    "provider": ("provider_id", "provider_name"),
    "model": ("model",),
    "day": ("day",),
    "operation": ("operation",),
}
SUMMED = (
    "requests", "errors", "estimated", "input_tokens", "cached_input_tokens",
    "cache_write_tokens", "output_tokens", "reasoning_tokens",
)  # fmt: skip
MAX_REPORT_DAYS = 3660


@dataclasses.dataclass(frozen=True)
class CostRow:
    """Totals of one group; the keys a report is not grouped by are None."""

    day: dt.date | None = None
    user_id: uuid.UUID | None = None
    token_id: uuid.UUID | None = None
    provider_id: uuid.UUID | None = None
    provider_name: str | None = None
    model: str | None = None
    operation: str | None = None
    requests: int = 0
    errors: int = 0  # requests that did not end "ok"
    estimated: int = 0  # requests whose tokens Lumina counted itself
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Decimal = Decimal(0)

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.cached_input_tokens
            + self.cache_write_tokens
            + self.output_tokens
            + self.reasoning_tokens
        )


class ReportError(ApplicationError):
    code = "invalid_report"
    status = 400


def _columns(group_by: Sequence[str]) -> list[str]:
    unknown = [name for name in group_by if name not in GROUPS]
    if unknown:
        raise ReportError(
            f"Unknown group_by {', '.join(map(repr, unknown))}.",
            fields={"group_by": [f"Choose from {', '.join(GROUPS)}."]},
        )
    columns: list[str] = []
    for name in group_by:
        columns.extend(column for column in GROUPS[name] if column not in columns)
    return columns


def _check_range(since: dt.date, until: dt.date) -> None:
    if until < since:
        raise ReportError("until is before since.", fields={"until": ["Must not be before since."]})
    if (until - since).days > MAX_REPORT_DAYS:
        raise ReportError(
            "The range is too long.", fields={"until": [f"At most {MAX_REPORT_DAYS} days."]}
        )


def cost_report(
    *,
    since: dt.date,
    until: dt.date,
    group_by: Sequence[str] = (),
    user_id: uuid.UUID | None = None,
    token_id: uuid.UUID | None = None,
) -> list[CostRow]:
    """Totals per group over ``since``…``until`` (UTC days, both included), from the rollups."""
    columns = _columns(group_by)
    _check_range(since, until)
    rows = DailyUsage.objects.filter(day__gte=since, day__lte=until)
    if user_id is not None:
        rows = rows.filter(user_id=user_id)
    if token_id is not None:
        rows = rows.filter(token_id=token_id)
    # Annotation names must differ from the model's field names.
    sums = {f"sum_{name}": Coalesce(Sum(name), 0) for name in SUMMED}
    sums["sum_cost"] = Coalesce(Sum("cost"), Decimal(0))
    if not columns:
        totals = rows.aggregate(**sums, groups=Count("id"))
        return [_row({}, totals)] if totals["groups"] else []
    grouped = rows.values(*columns).annotate(**sums).order_by(*columns)
    return [_row({column: values[column] for column in columns}, values) for values in grouped]


def _row(keys: dict, values: dict) -> CostRow:
    return CostRow(
        **keys,
        **{name: int(values[f"sum_{name}"]) for name in SUMMED},
        cost=Decimal(values["sum_cost"]),
    )


def cost_total(rows: Sequence[CostRow]) -> CostRow:
    """One row summing ``rows`` (a report's totals line)."""
    return CostRow(
        **{name: sum(getattr(row, name) for row in rows) for name in SUMMED},
        cost=sum((row.cost for row in rows), Decimal(0)),
    )


def usage_spent(*, scope: str, subject_id: uuid.UUID, since: dt.date) -> Decimal:
    """Money a user's or token's requests cost from ``since`` on, from the rollups."""
    column = "user_id" if scope == "user" else "token_id"
    spent = DailyUsage.objects.filter(**{column: subject_id, "day__gte": since}).aggregate(
        spent=Coalesce(Sum("cost"), Decimal(0))
    )["spent"]
    return Decimal(spent)


def usage_list(
    *,
    since: dt.datetime,
    until: dt.datetime,
    user_id: uuid.UUID | None = None,
    token_id: uuid.UUID | None = None,
    provider_id: uuid.UUID | None = None,
    model: str | None = None,
    status: str | None = None,
    operation: str | None = None,
) -> QuerySet[UsageRecord]:
    """Raw ledger rows in ``[since, until)``, newest first; the range prunes partitions."""
    rows = UsageRecord.objects.filter(occurred_at__gte=since, occurred_at__lt=until)
    for column, value in (
        ("user_id", user_id),
        ("token_id", token_id),
        ("provider_id", provider_id),
        ("model", model),
        ("status", status),
        ("operation", operation),
    ):
        if value is not None:
            rows = rows.filter(**{column: value})
    return rows.order_by("-occurred_at", "id")
