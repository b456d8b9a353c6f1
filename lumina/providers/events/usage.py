"""Events of the usage ledger: one ``UsageRecorded`` per request, ``BudgetExceeded`` on refusal.

``UsageRecorded`` carries every field of a ``UsageEntry``; its id and time are the entry's own,
so the ledger row, the outbox row and the projection's processed mark share one id.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from decimal import Decimal

from lumina.kernel.events import DomainEvent
from lumina.providers.types import Usage, UsageEntry, UsageStatus

__all__ = ["BudgetExceeded", "UsageRecorded"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class UsageRecorded(DomainEvent):
    """One request's usage and cost, whatever its outcome (the usage stream)."""

    name = "providers.UsageRecorded"
    version = 1

    request_id: str
    operation: str
    status: str
    stream: bool
    requested_model: str
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False
    cost: Decimal = Decimal(0)  # US dollars; a string in the payload, so nothing is rounded
    user_id: uuid.UUID | None = None
    token_id: uuid.UUID | None = None
    provider_id: uuid.UUID | None = None
    provider_name: str = ""
    deployment_id: uuid.UUID | None = None
    model: str = ""
    attempts: int = 1
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    error_code: str = ""
    attempt_log: tuple[dict, ...] = ()

    @classmethod
    def from_entry(cls, entry: UsageEntry) -> UsageRecorded:
        usage = entry.usage
        return cls(
            id=entry.id,
            occurred_at=entry.occurred_at,
            request_id=entry.request_id,
            operation=entry.operation,
            status=UsageStatus(entry.status).value,
            stream=entry.stream,
            requested_model=entry.requested_model,
            input_tokens=usage.input_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            output_tokens=usage.output_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            estimated=usage.estimated,
            cost=entry.cost,
            user_id=entry.user_id,
            token_id=entry.token_id,
            provider_id=entry.provider_id,
            provider_name=entry.provider_name,
            deployment_id=entry.deployment_id,
            model=entry.model,
            attempts=entry.attempts,
            latency_ms=entry.latency_ms,
            ttft_ms=entry.ttft_ms,
            error_code=entry.error_code,
            attempt_log=tuple(entry.attempt_log),
        )

    def to_entry(self) -> UsageEntry:
        return UsageEntry(
            id=self.id,
            occurred_at=self.occurred_at,
            request_id=self.request_id,
            operation=self.operation,
            status=UsageStatus(self.status),
            stream=self.stream,
            requested_model=self.requested_model,
            usage=Usage(
                input_tokens=self.input_tokens,
                cached_input_tokens=self.cached_input_tokens,
                cache_write_tokens=self.cache_write_tokens,
                output_tokens=self.output_tokens,
                reasoning_tokens=self.reasoning_tokens,
                estimated=self.estimated,
            ),
            cost=self.cost,
            user_id=self.user_id,
            token_id=self.token_id,
            provider_id=self.provider_id,
            provider_name=self.provider_name,
            deployment_id=self.deployment_id,
            model=self.model,
            attempts=self.attempts,
            latency_ms=self.latency_ms,
            ttft_ms=self.ttft_ms,
            error_code=self.error_code,
            attempt_log=tuple(self.attempt_log),
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class BudgetExceeded(DomainEvent):
    """A request was refused because a budget's money for the period is spent (once a period)."""

    name = "providers.BudgetExceeded"
    version = 1

    budget_id: uuid.UUID
    scope: str  # "user" or "token"
    subject_id: uuid.UUID
    period: str  # "day", "week" or "month"
    period_start: dt.date
    limit_usd: Decimal
    spent_usd: Decimal
