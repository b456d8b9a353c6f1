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
    # The token that minted this one, if a token did; revoking it revokes this one.
    parent_id: uuid.UUID | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ApiTokenRevoked(SecurityEvent):
    name = "security.ApiTokenRevoked"
    version = 1

    token_id: uuid.UUID
    user_id: uuid.UUID
    prefix: str
    # Set when the token went with an ancestor (the token that minted it, or that one's).
    revoked_with: uuid.UUID | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ApiTokensRefused(SecurityEvent):
    """Presented API tokens refused within one minute, counted for one client address or
    one token prefix: an attack shows without one audit entry per request."""

    name = "security.ApiTokensRefused"
    version = 1
    durable = True

    # "address:<client address>" or "prefix:<the token's first 12 characters>".
    target: str
    window_start: dt.datetime
    count: int
    malformed: int = 0
    unknown: int = 0  # no such token, or its user is inactive
    expired: int = 0
    revoked: int = 0
    outcome: str = "denied"
