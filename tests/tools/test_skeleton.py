"""The tools context's permissions reach the built-in roles."""

from __future__ import annotations

import pytest

from lumina.kernel.permissions import catalogue
from lumina.security.api import Resource, authorize
from tests.tools.conftest import actor_of_user

pytestmark = pytest.mark.django_db


def test_the_tools_permissions_are_declared():
    assert {"tools.read", "tools.manage", "tools.execute", "tools.executions.read_all"} <= set(
        catalogue()
    )


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("Viewer", {"tools.read"}),
        ("Developer", {"tools.read", "tools.execute"}),
        ("Admin", {"tools.read", "tools.execute", "tools.manage", "tools.executions.read_all"}),
    ],
)
def test_built_in_roles_hold_the_tools_permissions_they_should(user_factory, role, allowed):
    actor = actor_of_user(user_factory(role=role))
    held = {
        name
        for name in ("tools.read", "tools.execute", "tools.manage", "tools.executions.read_all")
        if authorize(actor, name, Resource(type="tools.tool", id="x"))
    }
    assert held == allowed
