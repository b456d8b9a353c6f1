"""Events about browser sessions and passwords. No password, token or session key goes in one."""

from __future__ import annotations

import dataclasses
import uuid

from lumina.security.events.base import SecurityEvent


@dataclasses.dataclass(frozen=True, kw_only=True)
class SessionsEnded(SecurityEvent):
    """Sessions of a user were ended before their time (revoked, or a password changed)."""

    name = "security.SessionsEnded"
    version = 1

    user_id: uuid.UUID
    # "revoked" (by the user), "revoked_by_administrator", "password_changed",
    # "password_reset".
    reason: str
    session_ids: tuple[uuid.UUID, ...] = ()


@dataclasses.dataclass(frozen=True, kw_only=True)
class PasswordChanged(SecurityEvent):
    """A user changed their password (the current one was given); by change or reset."""

    name = "security.PasswordChanged"
    version = 1

    user_id: uuid.UUID
    # "change" (signed in, with the current password) or "reset" (an emailed link).
    method: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class PasswordChangeRefused(SecurityEvent):
    """A password change was refused because the current password was wrong."""

    name = "security.PasswordChangeRefused"
    version = 1
    durable = True

    user_id: uuid.UUID
    outcome: str = "denied"


@dataclasses.dataclass(frozen=True, kw_only=True)
class PasswordResetRequested(SecurityEvent):
    """Someone asked for a reset link. ``user_id`` is None when no active account has the
    email, and ``mailed`` says whether a link goes out (one per account per minute)."""

    name = "security.PasswordResetRequested"
    version = 1
    durable = True

    email: str
    user_id: uuid.UUID | None
    mailed: bool


@dataclasses.dataclass(frozen=True, kw_only=True)
class PasswordResetFailed(SecurityEvent):
    """A reset link was used that is invalid, expired or already used."""

    name = "security.PasswordResetFailed"
    version = 1
    durable = True

    user_id: uuid.UUID | None
    reason: str
    outcome: str = "failure"
