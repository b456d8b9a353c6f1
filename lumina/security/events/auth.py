"""Events about signing in: logins and their failures, lockouts, throttling, logouts.

None of them carries a password or any other credential.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from lumina.security.events.base import SecurityEvent


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoginSucceeded(SecurityEvent):
    name = "security.LoginSucceeded"
    version = 1
    durable = True

    user_id: uuid.UUID
    email: str
    # True when the session still has to pass multi-factor verification.
    mfa_required: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoginFailed(SecurityEvent):
    name = "security.LoginFailed"
    version = 1
    durable = True

    # The address that was tried; user_id is None when no account has it.
    email: str
    user_id: uuid.UUID | None = None
    # "invalid_credentials" or "account_locked".
    reason: str = "invalid_credentials"
    outcome: str = "failure"


@dataclasses.dataclass(frozen=True, kw_only=True)
class AccountLocked(SecurityEvent):
    name = "security.AccountLocked"
    version = 1
    durable = True

    email: str
    user_id: uuid.UUID | None
    locked_until: dt.datetime
    failures: int
    # Which kind of attempt tripped the lock: "login" or "mfa".
    scope: str = "login"
    outcome: str = "denied"


@dataclasses.dataclass(frozen=True, kw_only=True)
class AccountUnlocked(SecurityEvent):
    name = "security.AccountUnlocked"
    version = 1

    user_id: uuid.UUID
    email: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class AddressThrottled(SecurityEvent):
    """A client address went over an attempt rate; published once per window."""

    name = "security.AddressThrottled"
    version = 1
    durable = True

    scope: str
    limit: int
    window_seconds: int
    outcome: str = "denied"


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoggedOut(SecurityEvent):
    name = "security.LoggedOut"
    version = 1

    user_id: uuid.UUID
