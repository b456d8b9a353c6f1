"""Changing a password (signed in, giving the current one) and resetting it by an emailed link.

Both end the user's other sessions. A reset request answers the same whether or not an
account has the email; the link is made and mailed by the ``PasswordResetRequested``
handler after the request commits (by a worker with the Celery transport), with
Django's password-reset tokens: an HMAC over the user's id, password hash, last login
and email, with a timestamp checked against ``PASSWORD_RESET_TIMEOUT``. Setting the
new password changes the hash, so a link works once. A reset does not remove a second
factor: a user with MFA still needs a code at their next sign-in.
"""

from __future__ import annotations

import hashlib
import uuid

import structlog
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from lumina.kernel.bus import publish
from lumina.kernel.errors import ApplicationError
from lumina.security.events.sessions import (
    PasswordChanged,
    PasswordChangeRefused,
    PasswordResetFailed,
    PasswordResetRequested,
)
from lumina.security.models.users import User
from lumina.security.selectors.auth import user_by_email
from lumina.security.services.auth import attempt_guard
from lumina.security.services.sessions import sessions_end

logger = structlog.get_logger(__name__)

# At most one reset mail per account in this many seconds, so the form cannot flood a mailbox.
RESET_MAIL_INTERVAL = 60
_KEY_PREFIX = "lumina:security:password-reset"
RESET_SUBJECT = "Reset your Lumina password"


class InvalidResetLinkError(ApplicationError):
    code = "invalid_token"

    def __init__(self) -> None:
        message = "The reset link is invalid, has expired or has already been used."
        super().__init__(message, fields={"token": [message]})


def _validate_new_password(password: str, user: User) -> None:
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ValidationError({"new_password": exc.messages}) from None


def _set_password(*, user: User, password: str, method: str, ip_address: str | None) -> None:
    user.set_password(password)
    user.save(update_fields=["password"])
    publish(
        PasswordChanged(user_id=user.pk, method=method, actor_id=user.pk, ip_address=ip_address)
    )


def password_change(
    *,
    user: User,
    current_password: str,
    new_password: str,
    keep_session_key: str | None,
    ip_address: str | None = None,
) -> int:
    """Set a new password once the current one is given; end every other session.

    Returns how many sessions ended. Wrong current passwords count towards the account
    lockout like wrong sign-in passwords (``AccountLockedError`` once locked).
    """
    guard = attempt_guard(scope="login", email=user.email, user=user, ip_address=ip_address)
    guard.check()
    if not user.check_password(current_password):
        publish(PasswordChangeRefused(user_id=user.pk, actor_id=user.pk, ip_address=ip_address))
        guard.record_failure()
        message = "The current password is not correct."
        raise ApplicationError(
            message, fields={"current_password": [message]}, code="invalid_password"
        )
    guard.record_success()
    _validate_new_password(new_password, user)
    with transaction.atomic():
        _set_password(user=user, password=new_password, method="change", ip_address=ip_address)
        return sessions_end(
            user_id=user.pk,
            reason="password_changed",
            keep_session_key=keep_session_key,
            actor_id=user.pk,
            ip_address=ip_address,
        )


def _mail_slot(email: str) -> bool:
    digest = hashlib.sha256(email.encode()).hexdigest()
    return cache.add(f"{_KEY_PREFIX}:{digest}", 1, timeout=RESET_MAIL_INTERVAL)


def password_reset_request(*, email: str, ip_address: str | None = None) -> None:
    """Ask for a reset link for ``email``. Says nothing about whether the account exists."""
    email = email.strip().lower()
    user = user_by_email(email=email)
    # Accounts without a password sign in through their identity provider only.
    eligible = user is not None and user.is_active and user.has_usable_password()
    mailed = eligible and _mail_slot(email)
    publish(
        PasswordResetRequested(
            email=email,
            user_id=user.pk if eligible else None,
            mailed=mailed,
            ip_address=ip_address,
        )
    )


def reset_link(user: User) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return settings.LUMINA_PASSWORD_RESET_URL.format(uid=uid, token=token)


def password_reset_mail_send(*, user_id: uuid.UUID) -> bool:
    """Mail a fresh reset link to the user (the ``PasswordResetRequested`` handler)."""
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None or not user.has_usable_password():
        return False
    minutes = settings.PASSWORD_RESET_TIMEOUT // 60
    body = (
        "Someone asked to reset the password of your Lumina account. If it was you, "
        f"open this link within {minutes} minutes to choose a new password:\n\n"
        f"{reset_link(user)}\n\n"
        "The link works once. If you did not ask for it, ignore this message: your "
        "password stays as it is.\n"
    )
    send_mail(RESET_SUBJECT, body, settings.DEFAULT_FROM_EMAIL, [user.email])
    logger.info("password reset link mailed", user_id=str(user.pk))
    return True


def _user_for(uid: str) -> User | None:
    try:
        pk = uuid.UUID(force_str(urlsafe_base64_decode(uid)))
    except (TypeError, ValueError, UnicodeDecodeError):
        return None
    return User.objects.filter(pk=pk, is_active=True).first()


def password_reset_confirm(
    *, uid: str, token: str, new_password: str, ip_address: str | None = None
) -> User:
    """Set a new password with a reset link's ``uid`` and ``token``; end every session."""
    user = _user_for(uid)
    if user is None or not default_token_generator.check_token(user, token):
        publish(
            PasswordResetFailed(
                user_id=user.pk if user else None,
                reason="invalid_or_expired",
                ip_address=ip_address,
            )
        )
        raise InvalidResetLinkError()
    _validate_new_password(new_password, user)
    with transaction.atomic():
        _set_password(user=user, password=new_password, method="reset", ip_address=ip_address)
        sessions_end(
            user_id=user.pk, reason="password_reset", actor_id=user.pk, ip_address=ip_address
        )
    return user
