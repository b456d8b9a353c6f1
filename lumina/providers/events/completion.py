"""``CompletionGenerated``: a chat completion was delivered in full to its caller.

Published with the usage ledger's next batch, after the response, never on the hot path.
"""

from __future__ import annotations

import dataclasses
import uuid
from decimal import Decimal

from lumina.kernel.events import DomainEvent

__all__ = ["CompletionGenerated", "CompletionTranscript"]


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


@dataclasses.dataclass(frozen=True, kw_only=True)
class CompletionTranscript(DomainEvent):
    """The messages and reply of a chat completion whose caller opted in to recording.

    Published only then: the API token carries the ``memory.record`` scope, or the request
    names a session in ``X-Lumina-Memory-Session`` (``opt_in`` says which). Whoever
    records it decides whether the user may have it recorded; providers knows nothing
    of memory. Messages keep only role, name and text.
    """

    name = "providers.CompletionTranscript"
    version = 1

    request_id: str
    user_id: uuid.UUID | None
    token_id: uuid.UUID | None
    # The token's scopes (None: a session), so the recorder can tell what it may write.
    token_scopes: tuple[str, ...] | None
    opt_in: str  # "token" | "header"
    session: str
    model: str
    messages: tuple[dict, ...]
    reply: str
