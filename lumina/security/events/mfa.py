"""Events about multi-factor authentication. No code, secret or key ever goes in one."""

from __future__ import annotations

import dataclasses
import uuid

from lumina.security.events.base import SecurityEvent


@dataclasses.dataclass(frozen=True, kw_only=True)
class MfaEnabled(SecurityEvent):
    """A user confirmed an authenticator app: their logins now need a second factor."""

    name = "security.MfaEnabled"
    version = 1

    user_id: uuid.UUID
    device_type: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class MfaVerified(SecurityEvent):
    """A session passed the second factor."""

    name = "security.MfaVerified"
    version = 1
    durable = True

    user_id: uuid.UUID
    device_type: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class MfaFailed(SecurityEvent):
    """A second-factor code was wrong, replayed, or refused while throttled."""

    name = "security.MfaFailed"
    version = 1
    durable = True

    user_id: uuid.UUID
    # "invalid_code", "throttled" or "not_enrolled".
    reason: str
    outcome: str = "failure"


@dataclasses.dataclass(frozen=True, kw_only=True)
class MfaBackupCodesGenerated(SecurityEvent):
    """New backup codes replaced any earlier ones."""

    name = "security.MfaBackupCodesGenerated"
    version = 1

    user_id: uuid.UUID
    count: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class MfaDisabled(SecurityEvent):
    """A user turned MFA off (all devices removed) after re-entering their password."""

    name = "security.MfaDisabled"
    version = 1

    user_id: uuid.UUID
    devices_removed: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class MfaDisableRefused(SecurityEvent):
    """Turning MFA off was refused because the password was wrong."""

    name = "security.MfaDisableRefused"
    version = 1
    durable = True

    user_id: uuid.UUID
    outcome: str = "denied"


@dataclasses.dataclass(frozen=True, kw_only=True)
class MfaReset(SecurityEvent):
    """Support removed a user's devices (``manage.py security mfa reset``)."""

    name = "security.MfaReset"
    version = 1

    user_id: uuid.UUID
    devices_removed: int
