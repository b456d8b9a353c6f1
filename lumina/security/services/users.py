"""User accounts: creation, the first admin that ``make run`` makes sure exists, and who
may change whose credentials.

Changing someone's password, email, active flag, second factor, linked identities or
tokens is a way to become them. So nobody may do it to an account that holds more than
they do: a superuser's only a superuser (or the system: the CLI), a staff member's only
staff, anyone else's only an actor holding every permission that account holds.
"""

from __future__ import annotations

import secrets

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from lumina.kernel.bus import publish
from lumina.kernel.errors import PermissionDeniedError
from lumina.kernel.permissions import catalogue
from lumina.security.events.rbac import AccessDenied
from lumina.security.events.users import UserCreated
from lumina.security.models.users import User
from lumina.security.services.authorization import holds
from lumina.security.types import Actor

MANAGE = "security.users.manage"


def user_create(
    *, email: str, password: str | None, is_staff: bool = False, is_superuser: bool = False
) -> User:
    """Create a user; ``password=None`` makes an account that can only log in another way
    (OIDC). A given password must pass the configured validators (``ValidationError``
    naming ``password`` otherwise)."""
    if password is not None:
        try:
            validate_password(password, User(email=email))
        except ValidationError as exc:
            raise ValidationError({"password": exc.messages}) from None
    with transaction.atomic():
        if is_superuser:
            user = User.objects.create_superuser(email, password)
        else:
            user = User.objects.create_user(email, password, is_staff=is_staff)
        publish(UserCreated(user_id=user.id, email=user.email, is_staff=user.is_staff))
    return user


def admin_ensure(*, email: str, password: str | None) -> tuple[User, bool, str | None]:
    """Make sure a user with ``email`` exists, creating a superuser if not.

    Returns the user, whether it was created and, when it was created without a
    given password, the generated one (shown once; stored only as its hash).
    """
    existing = User.objects.filter(email__iexact=email).first()
    if existing is not None:
        return existing, False, None
    generated = None
    if not password:
        generated = password = secrets.token_urlsafe(18)
    user = user_create(email=email, password=password, is_superuser=True)
    return user, True, generated


# --- Who may change whose credentials ---------------------------------------------------


def user_takeover_refusal(actor: Actor, target: User) -> str | None:
    """Why ``actor`` may not change ``target``'s credentials, or None when it may.

    Only the rank rule: the permission to manage users or tokens is checked by the caller.
    """
    if actor.is_system or (actor.user_id is not None and actor.user_id == target.pk):
        return None
    if target.is_superuser and not actor.is_superuser:
        return "only a superuser may change a superuser's credentials"
    if actor.is_superuser:
        return None
    if target.is_staff and not actor.is_staff:
        return "only staff may change a staff member's credentials"
    # Counting roles that need a second factor as held: the account's owner could use them.
    subject = Actor.for_user(target, mfa_verified=True)
    missing = [name for name in catalogue() if holds(subject, name) and not holds(actor, name)]
    if missing:
        listed = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        return f"{target.email} holds permissions the actor does not: {listed}"
    return None


def user_credentials_manageable(actor: Actor, target: User) -> bool:
    return user_takeover_refusal(actor, target) is None


def user_credentials_require(actor: Actor, target: User, *, action: str = MANAGE) -> None:
    """Refuse (``PermissionDeniedError``, audited as ``AccessDenied``) when ``actor`` may
    not change ``target``'s credentials."""
    reason = user_takeover_refusal(actor, target)
    if reason is None:
        return
    publish(
        AccessDenied(
            action=action,
            reason=reason,
            resource_type="security.user",
            resource_id=str(target.pk),
            caller_context=actor.context or "",
            token_id=actor.token_id,
            actor_id=actor.user_id,
            ip_address=actor.ip_address,
        )
    )
    raise PermissionDeniedError(f"You may not change this account: {reason}.")
