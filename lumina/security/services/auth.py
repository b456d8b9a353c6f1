"""Signing in: password checks, per-account lockout and per-address attempt limits.

Counters live in Django's cache (Redis when configured, so every process shares them)
and change only through atomic ``add``/``incr``. A lock is kept twice: in the cache,
keyed by the hashed email so an address without an account locks exactly like one
with an account (no enumeration), and on the user row (``locked_until``) so it
survives a cache flush and shows in the admin console.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import ipaddress
import math
import secrets
import time
import uuid

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from lumina.kernel.bus import publish
from lumina.kernel.errors import ApplicationError
from lumina.security.events.auth import (
    AccountLocked,
    AccountUnlocked,
    AddressThrottled,
    LoggedOut,
    LoginFailed,
    LoginSucceeded,
)
from lumina.security.models.users import User
from lumina.security.selectors.auth import user_by_email, user_requires_mfa
from lumina.security.types import Actor

# A streak of failures is forgotten a day after its first failure.
FAILURE_MEMORY_SECONDS = 24 * 3600
_KEY_PREFIX = "lumina:security:auth"


class InvalidCredentialsError(ApplicationError):
    code = "invalid_credentials"
    status = 401

    def __init__(self) -> None:
        # One message whatever was wrong, so responses never tell which accounts exist.
        super().__init__("Invalid email or password.")


class AccountLockedError(ApplicationError):
    code = "account_locked"
    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many failed attempts; this account is temporarily locked.")
        self.retry_after = retry_after


def _incr(key: str, timeout: int) -> int:
    """Atomically add one to a counter that starts at zero and expires after ``timeout``."""
    cache.add(key, 0, timeout=timeout)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 0, timeout=timeout)
        return cache.incr(key)


def _account_key(kind: str, email: str) -> str:
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    return f"{_KEY_PREFIX}:{kind}:{digest}"


@dataclasses.dataclass(frozen=True)
class AttemptGuard:
    """Lockout bookkeeping for one account and one kind of attempt ("login", "mfa").

    Use: ``check()`` before verifying anything, then ``record_failure()`` or
    ``record_success()``. Failures are counted per kind, so a correct password does not
    reset the count of wrong one-time codes; the lock itself covers the whole account.
    """

    scope: str
    email: str
    user_id: uuid.UUID | None
    locked_until: dt.datetime | None
    ip_address: str | None

    def check(self) -> None:
        """Raise ``AccountLockedError`` (with seconds to wait) while the account is locked."""
        now = time.time()
        ends = [self.locked_until.timestamp()] if self.locked_until else []
        cached = cache.get(_account_key("lock", self.email))
        if cached is not None:
            ends.append(float(cached))
        until = max(ends, default=0.0)
        if until > now:
            raise AccountLockedError(retry_after=max(1, math.ceil(until - now)))

    def record_failure(self) -> bool:
        """Count a failure; lock the account when it reaches the limit. True if it locked."""
        limit = settings.LUMINA_LOGIN_MAX_FAILURES
        counter = _account_key(f"failures:{self.scope}", self.email)
        failures = _incr(counter, FAILURE_MEMORY_SECONDS)
        if failures != limit:  # only the attempt that reaches the limit locks and reports
            return False
        seconds = settings.LUMINA_LOGIN_LOCKOUT_SECONDS
        until = timezone.now() + dt.timedelta(seconds=seconds)
        cache.set(_account_key("lock", self.email), until.timestamp(), timeout=seconds)
        cache.delete(counter)
        with transaction.atomic():
            if self.user_id is not None:
                User.objects.filter(pk=self.user_id).update(locked_until=until)
            publish(
                AccountLocked(
                    actor_id=self.user_id,
                    ip_address=self.ip_address,
                    email=self.email,
                    user_id=self.user_id,
                    locked_until=until,
                    failures=failures,
                    scope=self.scope,
                )
            )
        return True

    def record_success(self) -> None:
        cache.delete(_account_key(f"failures:{self.scope}", self.email))
        if self.locked_until is not None and self.user_id is not None:
            User.objects.filter(pk=self.user_id).update(locked_until=None)


def attempt_guard(
    *, scope: str, email: str, user: User | None, ip_address: str | None
) -> AttemptGuard:
    """The lockout guard for attempts of kind ``scope`` on the account ``email``.

    ``user`` is the account when it exists (None for an unknown email address).
    """
    return AttemptGuard(
        scope=scope,
        email=email.strip().lower(),
        user_id=user.pk if user is not None else None,
        locked_until=user.locked_until if user is not None else None,
        ip_address=ip_address,
    )


def address_bucket(ip_address: str | None) -> str:
    """The unit counted: an IPv4 address, or an IPv6 /64 (one subscriber's usual allocation,
    so rotating through its addresses gains nothing)."""
    try:
        address = ipaddress.ip_address(ip_address or "")
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def address_attempt(*, scope: str, ip_address: str | None, limit: int, window: int) -> float | None:
    """Count an attempt from ``ip_address``; seconds to wait when over ``limit`` per ``window``.

    Fixed windows of ``window`` seconds; the first refused attempt of a window is audited.
    """
    now = time.time()
    bucket = int(now // window)
    key = f"{_KEY_PREFIX}:address:{scope}:{address_bucket(ip_address)}:{bucket}"
    count = _incr(key, window + 1)
    if count <= limit:
        return None
    if count == limit + 1:
        publish(
            AddressThrottled(ip_address=ip_address, scope=scope, limit=limit, window_seconds=window)
        )
    return (bucket + 1) * window - now


@functools.cache
def _dummy_password_hash() -> str:
    return make_password(secrets.token_urlsafe(24))


@dataclasses.dataclass(frozen=True)
class LoginResult:
    user: User
    # The session stays partially authenticated until the second factor is verified.
    mfa_required: bool


def user_authenticate(*, email: str, password: str, ip_address: str | None) -> LoginResult:
    """Check a password login; ``InvalidCredentialsError`` / ``AccountLockedError`` if refused."""
    email = email.strip().lower()
    user = user_by_email(email=email)
    guard = attempt_guard(scope="login", email=email, user=user, ip_address=ip_address)
    user_id = user.pk if user is not None else None
    try:
        guard.check()
    except AccountLockedError:
        publish(
            LoginFailed(
                actor_id=user_id,
                ip_address=ip_address,
                email=email,
                user_id=user_id,
                reason="account_locked",
                outcome="denied",
            )
        )
        raise
    if user is None:
        # Spend the same hashing time as for a real account, so timing tells nothing.
        check_password(password, _dummy_password_hash())
        valid = False
    else:
        valid = user.check_password(password) and user.is_active
    if not valid:
        publish(LoginFailed(actor_id=user_id, ip_address=ip_address, email=email, user_id=user_id))
        guard.record_failure()
        raise InvalidCredentialsError()

    # Clears only the password failures: wrong one-time codes are counted until one is right.
    guard.record_success()
    mfa_required = user_requires_mfa(user=user)
    publish(
        LoginSucceeded(
            actor_id=user.pk,
            ip_address=ip_address,
            user_id=user.pk,
            email=user.email,
            mfa_required=mfa_required,
        )
    )
    return LoginResult(user=user, mfa_required=mfa_required)


def logout_record(*, actor: Actor) -> None:
    if actor.user_id is not None:
        publish(
            LoggedOut(actor_id=actor.user_id, ip_address=actor.ip_address, user_id=actor.user_id)
        )


def account_unlock(*, user_id: uuid.UUID, actor: Actor) -> None:
    """Lift a lockout now (operators); also forgets the account's counted failures."""
    user = User.objects.get(pk=user_id)
    for kind in ("lock", "failures:login", "failures:mfa"):
        cache.delete(_account_key(kind, user.email))
    with transaction.atomic():
        User.objects.filter(pk=user_id).update(locked_until=None)
        publish(
            AccountUnlocked(
                actor_id=actor.user_id,
                ip_address=actor.ip_address,
                user_id=user.pk,
                email=user.email,
            )
        )
