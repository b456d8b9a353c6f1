"""DRF throttles limiting attempts per client address, and the 429 for a locked account.

Rates come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` by scope (``"login"``,
``"mfa"``), e.g. ``"20/min"``; a scope without a rate is not limited. Counting is
atomic in Django's cache (``services.auth.address_attempt``), so with Redis every
process shares the counts. The MFA endpoint uses them like this::

    throttle_classes = [MfaAddressThrottle]
    guard = attempt_guard(scope="mfa", email=user.email, user=user, ip_address=...)
    try:
        guard.check()
    except AccountLockedError as exc:
        raise account_locked(exc) from None
    ... guard.record_failure() / guard.record_success()
"""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

from lumina.security.api.sign_in import sign_in_address_wait
from lumina.security.services.auth import AccountLockedError


class AddressRateThrottle(BaseThrottle):
    scope = ""

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request, view) -> bool:
        self._wait = sign_in_address_wait(request, self.scope)
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait


class LoginAddressThrottle(AddressRateThrottle):
    scope = "login"


class MfaAddressThrottle(AddressRateThrottle):
    scope = "mfa"


def account_locked(exc: AccountLockedError) -> exceptions.Throttled:
    """The 429 (common error shape, ``Retry-After``) for a locked account."""
    return exceptions.Throttled(wait=exc.retry_after, detail=exc.message, code=exc.code)
