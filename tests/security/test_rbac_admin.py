"""Admin console and CLI for roles and assignments: the same rules and audit as the API."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from lumina.security.api import authorize
from lumina.security.models.rbac import Role, RoleAssignment
from lumina.security.services import authorization
from lumina.security.services.rbac import roles_seed_builtin
from tests.security.rbac_support import actor_for, events_named, give_role, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _rbac_state(db):
    roles_seed_builtin()
    authorization.cache_clear()
    yield
    authorization.cache_clear()


@pytest.fixture
def console(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def test_a_role_added_in_the_console_goes_through_the_service(console):
    response = console.post(
        "/admin/security/role/add/",
        {"name": "Archivist", "description": "", "permissions": "memory.read,documents.*"},
    )

    assert response.status_code == 302, response.content[:2000]
    role = Role.objects.get(name="Archivist")
    assert role.permissions == ["memory.read", "documents.*"]
    assert events_named("security.RoleCreated")[0].payload["role_name"] == "Archivist"


def test_the_console_shows_pattern_errors_on_the_field(console):
    response = console.post(
        "/admin/security/role/add/", {"name": "Typo", "permissions": "memroy.read"}
    )

    assert response.status_code == 200
    assert "matches no declared permission" in response.content.decode()
    assert not Role.objects.filter(name="Typo").exists()


def test_built_in_roles_cannot_be_deleted_in_the_console(console):
    role = Role.objects.get(name="Owner")

    response = console.post(f"/admin/security/role/{role.pk}/delete/", {"post": "yes"})

    assert response.status_code == 403
    assert Role.objects.filter(name="Owner").exists()


def test_an_assignment_added_in_the_console_is_audited_and_effective(console):
    user = make_user()

    response = console.post(
        "/admin/security/roleassignment/add/",
        {"role": Role.objects.get(name="Developer").pk, "user": user.pk},
    )

    assert response.status_code == 302, response.content[:2000]
    assert authorize(actor_for(user), "providers.use")
    assert events_named("security.RoleAssigned")[0].payload["user_id"] == str(user.pk)


def test_staff_without_the_permission_do_not_see_roles():
    staff = make_user(is_staff=True)
    give_role(staff, "Developer")
    client = Client()
    client.force_login(staff)

    assert client.get("/admin/security/role/").status_code == 403


def test_the_cli_assigns_lists_and_unassigns_roles():
    user = make_user("cli@example.com")
    out = StringIO()

    call_command("security", "role", "assign", "Developer", "--user", "cli@example.com", stdout=out)
    assert authorize(actor_for(user), "providers.use")
    call_command("security", "role", "list", stdout=out)
    assert "held by: cli@example.com" in out.getvalue()

    call_command(
        "security", "role", "unassign", "developer", "--user", "cli@example.com", stdout=out
    )
    assert not RoleAssignment.objects.filter(user=user).exists()
    assert not authorize(actor_for(user), "providers.use")


def test_the_cli_names_what_is_wrong():
    with pytest.raises(CommandError, match="No user"):
        call_command("security", "role", "assign", "Developer", "--user", "ghost@example.com")
    with pytest.raises(CommandError, match="no role"):
        call_command("security", "role", "unassign", "Nope", "--user", "ghost@example.com")


def test_the_cli_restores_built_in_roles():
    Role.objects.filter(name="Viewer").delete()
    out = StringIO()

    call_command("security", "role", "seed", stdout=out)

    assert Role.objects.get(name="Viewer").built_in
    assert "Viewer" in out.getvalue()


def test_an_admin_cannot_change_the_owner_role_in_the_console():
    staff = make_user(is_staff=True)
    give_role(staff, "Admin")
    client = Client()
    client.force_login(staff)
    owner = Role.objects.get(name="Owner")

    response = client.post(
        f"/admin/security/role/{owner.pk}/change/", {"description": "", "requires_mfa": ""}
    )

    assert response.status_code == 200
    assert "security.keys.rotate" in response.content.decode()
    assert events_named("security.RoleUpdated") == []
