"""User accounts: creation, and the first admin that ``make run`` makes sure exists."""

from __future__ import annotations

import secrets

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from lumina.kernel.bus import publish
from lumina.security.events.users import UserCreated
from lumina.security.models.users import User


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
