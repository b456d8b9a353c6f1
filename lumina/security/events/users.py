"""Events about user accounts."""

from __future__ import annotations

import dataclasses
import uuid

from lumina.security.events.base import SecurityEvent


@dataclasses.dataclass(frozen=True, kw_only=True)
class UserCreated(SecurityEvent):
    name = "security.UserCreated"
    version = 1

    user_id: uuid.UUID
    email: str
    is_staff: bool
