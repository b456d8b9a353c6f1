"""Public interface: user accounts."""

from __future__ import annotations

import dataclasses
import uuid

from lumina.security.selectors import rbac as rbac_selectors
from lumina.security.services import users as services


@dataclasses.dataclass(frozen=True)
class UserDTO:
    id: uuid.UUID
    email: str
    is_staff: bool
    is_superuser: bool


@dataclasses.dataclass(frozen=True)
class EnsuredAdmin:
    user: UserDTO
    created: bool
    generated_password: str | None


def ensure_admin(*, email: str, password: str | None) -> EnsuredAdmin:
    """Create the first superuser if missing (used by ``make run``)."""
    user, created, generated = services.admin_ensure(email=email, password=password)
    return EnsuredAdmin(
        user=UserDTO(user.id, user.email, user.is_staff, user.is_superuser),
        created=created,
        generated_password=generated,
    )


def user_find(reference: str) -> UserDTO | None:
    """A user by id or (case-insensitive) email; None when there is none."""
    user = rbac_selectors.user_find(reference=reference)
    if user is None:
        return None
    return UserDTO(user.id, user.email, user.is_staff, user.is_superuser)
