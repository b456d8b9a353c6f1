"""Reads for signing in: accounts by email and whether they need a second factor."""

from __future__ import annotations

import django_otp

from lumina.security.models.users import User


def user_by_email(*, email: str) -> User | None:
    return User.objects.filter(email__iexact=email.strip()).first()


def user_requires_mfa(*, user: User) -> bool:
    """Whether signing in as ``user`` takes a second factor: they have a confirmed device."""
    return django_otp.user_has_device(user, confirmed=True)
