"""Events about API tokens. They name a token by id and display prefix, never its secret."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from lumina.security.events.base import SecurityEvent


@dataclasses.dataclass(frozen=True, kw_only=True)
class ApiTokenCreated(SecurityEvent):
    name = "security.ApiTokenCreated"
    version = 1

    token_id: uuid.UUID
    user_id: uuid.UUID
    token_name: str
    prefix: str
    scopes: tuple[str, ...]
    expires_at: dt.datetime | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ApiTokenRevoked(SecurityEvent):
    name = "security.ApiTokenRevoked"
    version = 1

    token_id: uuid.UUID
    user_id: uuid.UUID
    prefix: str
