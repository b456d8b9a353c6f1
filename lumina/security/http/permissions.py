"""DRF permissions that know about the second factor.

A session whose user has a confirmed MFA device is only *partially* authenticated
until the MFA endpoint verifies a code (``django_otp.login``); API tokens are a
credential of their own and count as fully authenticated.
"""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from lumina.security.selectors.auth import user_requires_mfa
from lumina.security.selectors.tokens import TokenInfo


def is_token_request(request) -> bool:
    return isinstance(getattr(request, "auth", None), TokenInfo)


def is_mfa_verified(user) -> bool:
    """Set by django-otp's middleware on session users; token users are never OTP-verified."""
    is_verified = getattr(user, "is_verified", None)
    return bool(is_verified()) if callable(is_verified) else False


class IsPartiallyAuthenticated(BasePermission):
    """Any authenticated caller, second factor or not (MFA verification, logout, /auth/me)."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated)


class IsFullyAuthenticated(BasePermission):
    """Authenticated, and by token, or verified by MFA, or without an MFA device."""

    message = "Verify your second factor first."
    code = "mfa_required"

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        # Cheapest first: the device query runs only for unverified sessions.
        return (
            is_token_request(request) or is_mfa_verified(user) or not user_requires_mfa(user=user)
        )
