"""``CompletionGenerated``: a chat completion was delivered in full to its caller.

Published with the usage ledger's next batch, after the response, never on the hot path.
"""

from __future__ import annotations

import dataclasses
import uuid
from decimal import Decimal

from lumina.kernel.events import DomainEvent

__all__ = ["CompletionGenerated"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class CompletionGenerated(DomainEvent):
    name = "providers.CompletionGenerated"
    version = 1

    request_id: str
    user_id: uuid.UUID | None
    token_id: uuid.UUID | None
    provider_id: uuid.UUID
    deployment_id: uuid.UUID
    model: str
    stream: bool
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal
    latency_ms: float
