"""The memory context's permissions exist and land in the built-in roles."""

from __future__ import annotations

import pytest

from lumina.kernel.permissions import catalogue
from lumina.security.api import authorize
from tests.memory.conftest import actor_as

pytestmark = pytest.mark.django_db


def test_memory_permissions_are_declared():
    assert {"memory.read", "memory.write", "memory.manage"} <= set(catalogue())


@pytest.mark.parametrize(
    ("role", "read", "write", "manage"),
    [
        ("nobody", False, False, False),
        ("staff", False, False, False),
        ("viewer", True, False, False),
        ("developer", True, True, False),
        ("admin", True, True, True),
    ],
)
def test_roles_hold_the_memory_permissions(people, role, read, write, manage):
    actor = actor_as(getattr(people, role))
    assert bool(authorize(actor, "memory.read")) is read
    assert bool(authorize(actor, "memory.write")) is write
    assert bool(authorize(actor, "memory.manage")) is manage
