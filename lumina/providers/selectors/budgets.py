"""Budget reads: one budget, a filtered list, what each has spent this period, and the
enabled rules the hot path caches."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from decimal import Decimal

from lumina.kernel.errors import NotFoundError
from lumina.providers.models.usage import Budget
from lumina.providers.selectors.costs import usage_spent
from lumina.providers.selectors.visibility import budget_rows_visible, budget_visible_to
from lumina.security.api import Actor


@dataclasses.dataclass(frozen=True)
class BudgetDTO:
    id: uuid.UUID
    name: str
    scope: str  # "user" or "token"
    subject_id: uuid.UUID
    period: str  # "day", "week" or "month"
    limit_usd: Decimal | None
    requests_per_minute: int | None
    tokens_per_minute: int | None
    enabled: bool
    created_at: dt.datetime
    updated_at: dt.datetime


def budget_dto(budget: Budget) -> BudgetDTO:
    return BudgetDTO(
        id=budget.id,
        name=budget.name,
        scope=budget.scope,
        subject_id=budget.subject_id,
        period=budget.period,
        limit_usd=budget.limit_usd,
        requests_per_minute=budget.requests_per_minute,
        tokens_per_minute=budget.tokens_per_minute,
        enabled=budget.enabled,
        created_at=budget.created_at,
        updated_at=budget.updated_at,
    )


def budget_get(*, budget_id: uuid.UUID) -> BudgetDTO:
    try:
        return budget_dto(Budget.objects.get(pk=budget_id))
    except Budget.DoesNotExist:
        raise NotFoundError(f"No budget {budget_id}.") from None


def budget_list(
    *,
    visible_to: Actor,
    scope: str | None = None,
    subject_id: uuid.UUID | None = None,
) -> list[BudgetDTO]:
    """The budgets ``visible_to`` may see, optionally of one scope/subject."""
    budgets = Budget.objects.filter(budget_rows_visible(visible_to)).order_by(
        "scope", "subject_id", "created_at"
    )
    if scope is not None:
        budgets = budgets.filter(scope=scope)
    if subject_id is not None:
        budgets = budgets.filter(subject_id=subject_id)
    return [budget_dto(budget) for budget in budgets]


def budget_get_visible(*, budget_id: uuid.UUID, actor: Actor) -> BudgetDTO:
    """The budget, if ``actor`` may see it; otherwise the same 404 as for a missing one."""
    budget = budget_get(budget_id=budget_id)
    if not budget_visible_to(actor, scope=budget.scope, subject_id=budget.subject_id):
        raise NotFoundError(f"No budget {budget_id}.")
    return budget


def budget_rules() -> dict[tuple[str, uuid.UUID], tuple[BudgetDTO, ...]]:
    """Every enabled budget, by (scope, subject id): the snapshot admission checks against."""
    rules: dict[tuple[str, uuid.UUID], list[BudgetDTO]] = {}
    for budget in Budget.objects.filter(enabled=True).order_by("created_at"):
        rules.setdefault((budget.scope, budget.subject_id), []).append(budget_dto(budget))
    return {key: tuple(found) for key, found in rules.items()}


@dataclasses.dataclass(frozen=True)
class BudgetStatus:
    """A budget and what its subject has spent in the current period (from the rollups)."""

    budget: BudgetDTO
    period_start: dt.date
    spent_usd: Decimal


def period_start(period: str, today: dt.date) -> dt.date:
    """The first UTC day of the calendar period containing ``today`` (weeks start Monday)."""
    if period == Budget.Period.DAY:
        return today
    if period == Budget.Period.WEEK:
        return today - dt.timedelta(days=today.weekday())
    return today.replace(day=1)


def budget_statuses(*, actor: Actor, scope: str | None = None) -> list[BudgetStatus]:
    """The budgets ``actor`` may see, each with its spend so far this period."""
    today = dt.datetime.now(dt.UTC).date()
    found = []
    for budget in budget_list(visible_to=actor, scope=scope):
        start = period_start(budget.period, today)
        spent = usage_spent(scope=budget.scope, subject_id=budget.subject_id, since=start)
        found.append(BudgetStatus(budget=budget, period_start=start, spent_usd=spent))
    return found
