"""The base of every security event; each one is appended to the audit log."""

from __future__ import annotations

import dataclasses
import uuid
from typing import ClassVar

from lumina.kernel.events import DomainEvent


@dataclasses.dataclass(frozen=True, kw_only=True)
class SecurityEvent(DomainEvent):
    """A security-relevant fact. The audit handler records every subclass.

    ``durable`` events record something that happened whatever becomes of the
    publisher's transaction: an attempt, a refusal, a secret handed out. They are
    appended to the audit chain as they are published, through the chain's own
    connection, so a rollback cannot take them back. Other events record a change of
    state and are appended only once that change has committed.
    """

    durable: ClassVar[bool] = False

    actor_id: uuid.UUID | None = None
    ip_address: str | None = None
    # "success", "failure" or "denied".
    outcome: str = "success"
