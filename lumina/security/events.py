"""Events the security context publishes."""

from __future__ import annotations

import dataclasses
import uuid

from lumina.kernel.events import DomainEvent


@dataclasses.dataclass(frozen=True, kw_only=True)
class UserCreated(DomainEvent):
    name = "security.UserCreated"
    version = 1

    user_id: uuid.UUID
    email: str
    is_staff: bool
