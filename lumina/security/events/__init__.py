"""Events the security context publishes; importing this package registers them all."""

from lumina.security.events import (  # noqa: F401  (registers their event classes)
    crypto,
    mfa,
    oidc,
    policies,
    rbac,
    sessions,
)
from lumina.security.events.auth import (
    AccountLocked,
    AccountUnlocked,
    AddressThrottled,
    LoggedOut,
    LoginFailed,
    LoginSucceeded,
)
from lumina.security.events.base import SecurityEvent
from lumina.security.events.sessions import SessionsEnded
from lumina.security.events.tokens import ApiTokenCreated, ApiTokenRevoked, ApiTokensRefused
from lumina.security.events.users import UserCreated

__all__ = [
    "AccountLocked",
    "AccountUnlocked",
    "AddressThrottled",
    "ApiTokenCreated",
    "ApiTokenRevoked",
    "ApiTokensRefused",
    "LoggedOut",
    "LoginFailed",
    "LoginSucceeded",
    "SecurityEvent",
    "SessionsEnded",
    "UserCreated",
]
