"""Public interface: where a user stands with multi-factor authentication (never secrets)."""

from __future__ import annotations

import uuid

from lumina.kernel.errors import NotFoundError
from lumina.security.models.users import User
from lumina.security.selectors.mfa import MfaDevice, MfaStatus, mfa_status_get

__all__ = ["MfaDevice", "MfaStatus", "mfa_status"]


def mfa_status(*, user_id: uuid.UUID) -> MfaStatus:
    """The user's MFA devices (no keys or codes) and whether logins need a second factor."""
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        raise NotFoundError(f"No user {user_id}.")
    return mfa_status_get(user=user)
