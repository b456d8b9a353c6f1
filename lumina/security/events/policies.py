"""Events about authorisation policies; each carries the Cedar text it put in force."""

from __future__ import annotations

import dataclasses
import uuid

from lumina.security.events.base import SecurityEvent


@dataclasses.dataclass(frozen=True, kw_only=True)
class PolicyCreated(SecurityEvent):
    name = "security.PolicyCreated"
    version = 1

    policy_id: uuid.UUID
    policy_name: str
    policy_version: int
    enabled: bool
    cedar: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class PolicyUpdated(SecurityEvent):
    name = "security.PolicyUpdated"
    version = 1

    policy_id: uuid.UUID
    policy_name: str
    policy_version: int
    enabled: bool
    changed: tuple[str, ...]
    # Set when the update created a new version.
    cedar: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class PolicyDeleted(SecurityEvent):
    name = "security.PolicyDeleted"
    version = 1

    policy_id: uuid.UUID
    policy_name: str
    policy_version: int
