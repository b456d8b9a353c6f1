"""The base of every security event; each one is appended to the audit log."""

from __future__ import annotations

import dataclasses
import uuid

from lumina.kernel.events import DomainEvent


@dataclasses.dataclass(frozen=True, kw_only=True)
class SecurityEvent(DomainEvent):
    """A security-relevant fact. The audit handler records every subclass."""

    actor_id: uuid.UUID | None = None
    ip_address: str | None = None
    # "success", "failure" or "denied".
    outcome: str = "success"
