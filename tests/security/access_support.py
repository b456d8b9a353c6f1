"""Callers for the access walks: who lacks a permission, who holds exactly it."""

from __future__ import annotations

import dataclasses
import uuid

from lumina.kernel.permissions import catalogue
from lumina.security.api import authorize
from lumina.security.models.rbac import Role, RoleAssignment
from lumina.security.models.users import User
from tests.security.rbac_support import actor_for, give_role


def make_user(**extra) -> User:
    """A user without a password: nothing to hash, and nobody can log in as it."""
    return User.objects.create_user(f"{uuid.uuid4().hex[:12]}@walk.example", None, **extra)


@dataclasses.dataclass(frozen=True)
class Caller:
    label: str
    user: User


def holding(permissions: list[str], *, label: str, staff: bool = False) -> Caller:
    """A user whose one role allows exactly ``permissions``."""
    user = make_user(is_staff=staff)
    role = Role.objects.create(name=f"walk {uuid.uuid4().hex[:10]}", permissions=permissions)
    RoleAssignment.objects.create(role=role, user=user)
    return Caller(label, user)


def holder(permission: str, *, staff: bool = False) -> Caller:
    return holding([permission], label=f"holder of {permission}", staff=staff)


def lacking(
    permission: str, *, staff_only: bool = False, implied_by: tuple[str, ...] = ()
) -> list[Caller]:
    """Callers without ``permission``: no role (staff or not), a Viewer, and a near miss
    holding every other declared permission (but those in ``implied_by``, which grant the
    same access). Those that hold it after all are left out."""
    viewer = make_user(is_staff=True)
    give_role(viewer, "Viewer")
    excluded = {permission, *implied_by}
    everything_else = [name for name in catalogue() if name not in excluded]
    callers = [
        Caller("staff without a role", make_user(is_staff=True)),
        Caller("staff Viewer", viewer),
        holding(everything_else, label="staff holding every other permission", staff=True),
    ]
    if not staff_only:
        callers.insert(0, Caller("user without a role", make_user()))
    found = [caller for caller in callers if not authorize(actor_for(caller.user), permission)]
    assert found, f"nobody lacks {permission}"
    return found
