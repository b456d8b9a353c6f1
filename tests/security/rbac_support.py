"""Helpers shared by the RBAC and policy tests: actors, roles and assignments in one line."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import Group

from lumina.kernel.models import OutboxEvent
from lumina.security.models.rbac import Role, RoleAssignment
from lumina.security.models.users import User
from lumina.security.types import Actor

SYSTEM = Actor.system("tests")


def make_user(email: str | None = None, **extra) -> User:
    email = email or f"{uuid.uuid4().hex[:10]}@example.com"
    return User.objects.create_user(email, "a long passphrase 9", **extra)


def actor_for(user: User, **overrides) -> Actor:
    values = {
        "user_id": user.pk,
        "email": user.email,
        "is_superuser": user.is_superuser,
        "is_staff": user.is_staff,
        "is_active": user.is_active,
        "ip_address": "203.0.113.7",
    }
    values.update(overrides)
    return Actor(**values)


def token_actor(user: User, scopes: set[str], **overrides) -> Actor:
    return actor_for(user, token_id=uuid.uuid4(), scopes=frozenset(scopes), **overrides)


def give_role(user: User, role_name: str) -> RoleAssignment:
    return RoleAssignment.objects.create(role=Role.objects.get(name=role_name), user=user)


def give_group_role(group: Group, role_name: str) -> RoleAssignment:
    return RoleAssignment.objects.create(role=Role.objects.get(name=role_name), group=group)


def events_named(name: str) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(name=name).order_by("created_at"))


def assert_error(response, status: int, code: str | None = None, field: str | None = None) -> dict:
    """The common error shape, with the expected status, code and named field."""
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "message", "fields"}
    if code is not None:
        assert error["code"] == code
    if field is not None:
        named = [key for key in error["fields"] if key == field or key.startswith(f"{field}.")]
        assert named, error
    return error
