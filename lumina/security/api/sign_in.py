"""Public interface: signing a browser session in, for the REST API and pages' own forms.

``/api/v1/auth/login`` and ``/auth/mfa/verify`` call these after their DRF throttles; a
page's own form calls ``sign_in_address_wait`` first (the same per-address counts), then these.
Errors are the services': ``InvalidCredentialsError``, ``InvalidCodeError`` (401),
``AccountLockedError`` (429 with ``retry_after``), ``ConflictError`` (MFA not enabled).
"""

from __future__ import annotations

import django_otp
from django.conf import settings
from django.contrib import auth

from lumina.security.api.actors import client_ip
from lumina.security.services import mfa as mfa_services
from lumina.security.services.auth import AccountLockedError, address_attempt, user_authenticate

__all__ = [
    "SESSION_BACKEND",
    "AccountLockedError",
    "sign_in_address_wait",
    "sign_in_code",
    "sign_in_password",
]

SESSION_BACKEND = "lumina.security.backends.LockoutModelBackend"
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """``"20/min"`` → ``(20, 60)``; the period is read from its first letter (s, m, h, d)."""
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period.strip()[0]]


def sign_in_address_wait(request, scope: str) -> float | None:
    """Count one attempt of ``scope`` (``"login"`` or ``"mfa"``) from the request's address:
    None while under the limit, else the seconds to wait (as the REST throttles count)."""
    # DRF's own setting, read without importing DRF (contexts' services may not).
    rate = settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}).get(scope)
    if not rate:
        return None
    limit, window = parse_rate(rate)
    return address_attempt(scope=scope, ip_address=client_ip(request), limit=limit, window=window)


def sign_in_password(request, *, email: str, password: str) -> bool:
    """Sign the session in with a password; True when the account must still give a code."""
    result = user_authenticate(email=email, password=password, ip_address=client_ip(request))
    # A new password login always starts unverified, whatever the session held before.
    request.session.pop(django_otp.DEVICE_ID_SESSION_KEY, None)
    auth.login(request, result.user, backend=SESSION_BACKEND)
    return result.mfa_required


def sign_in_code(request, *, code: str):
    """Verify the second factor of a session that passed its password; returns the device."""
    device = mfa_services.mfa_verify(user=request.user, code=code, ip_address=client_ip(request))
    django_otp.login(request, device)
    # A new privilege level gets a new session id (no fixation of a verified session).
    request.session.cycle_key()
    return device
