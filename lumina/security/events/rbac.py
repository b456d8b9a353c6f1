"""Events about roles, role assignments, object grants and refused actions."""

from __future__ import annotations

import dataclasses
import uuid

from lumina.security.events.base import SecurityEvent


@dataclasses.dataclass(frozen=True, kw_only=True)
class RoleCreated(SecurityEvent):
    name = "security.RoleCreated"
    version = 1

    role_id: uuid.UUID
    role_name: str
    permissions: tuple[str, ...]
    requires_mfa: bool


@dataclasses.dataclass(frozen=True, kw_only=True)
class RoleUpdated(SecurityEvent):
    name = "security.RoleUpdated"
    version = 1

    role_id: uuid.UUID
    role_name: str
    # The names of the fields that changed, and the role's state after the change.
    changed: tuple[str, ...]
    permissions: tuple[str, ...]
    requires_mfa: bool
    previous_name: str | None = None
    previous_permissions: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class RoleDeleted(SecurityEvent):
    name = "security.RoleDeleted"
    version = 1

    role_id: uuid.UUID
    role_name: str
    permissions: tuple[str, ...]
    assignments_removed: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class RoleAssigned(SecurityEvent):
    name = "security.RoleAssigned"
    version = 1

    assignment_id: uuid.UUID
    role_id: uuid.UUID
    role_name: str
    user_id: uuid.UUID | None = None
    group_name: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class RoleUnassigned(SecurityEvent):
    name = "security.RoleUnassigned"
    version = 1

    assignment_id: uuid.UUID
    role_id: uuid.UUID
    role_name: str
    user_id: uuid.UUID | None = None
    group_name: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class GrantAdded(SecurityEvent):
    name = "security.GrantAdded"
    version = 1

    grant_id: str
    # "user" (principal_id is the user's UUID) or "group" (principal_id is its name).
    principal_type: str
    principal_id: str
    action: str
    resource_type: str
    resource_id: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class GrantRemoved(SecurityEvent):
    name = "security.GrantRemoved"
    version = 1

    grant_id: str
    principal_type: str
    principal_id: str
    action: str
    resource_type: str
    resource_id: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class AccessDenied(SecurityEvent):
    """An enforced refusal (REST permission check or a service's ``require``)."""

    name = "security.AccessDenied"
    version = 1
    durable = True

    action: str
    reason: str
    rules: tuple[str, ...] = ()
    resource_type: str | None = None
    resource_id: str | None = None
    # The context acting for a system actor, or "" for a user.
    caller_context: str = ""
    token_id: uuid.UUID | None = None
    outcome: str = "denied"
