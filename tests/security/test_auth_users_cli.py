"""``manage.py security user create --role``: a user and their role, together or not at all."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from lumina.security.models.rbac import RoleAssignment
from lumina.security.services.rbac import roles_seed_builtin

pytestmark = pytest.mark.django_db

CREATE_EVE = ("user", "create", "eve@example.com", "--password", "pw-long-enough-1")


def test_user_create_with_a_role_assigns_it(django_user_model):
    roles_seed_builtin()
    out = StringIO()
    call_command("security", *CREATE_EVE, "--role", "Admin", stdout=out)
    user = django_user_model.objects.get(email="eve@example.com")
    assert "with role Admin" in out.getvalue()
    assert RoleAssignment.objects.filter(user=user, role__name="Admin").exists()


def test_user_create_with_an_unknown_role_creates_nobody(django_user_model):
    with pytest.raises(CommandError, match="No role Nonesuch"):
        call_command("security", *CREATE_EVE, "--role", "Nonesuch", stdout=StringIO())
    assert not django_user_model.objects.filter(email="eve@example.com").exists()
