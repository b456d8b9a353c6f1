"""/api/v1/rbac/: the permission catalogue, roles, assignments, object grants, and refusals."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Group
from guardian.models import UserObjectPermission

from lumina.kernel.errors import PermissionDeniedError
from lumina.kernel.permissions import catalogue
from lumina.security.api import authorize
from lumina.security.http.authorization import Authorized
from lumina.security.models.rbac import Role, RoleAssignment
from lumina.security.services import authorization
from lumina.security.services.rbac import grant_add, roles_seed_builtin
from lumina.security.types import Resource
from tests.security.rbac_support import (
    SYSTEM,
    actor_for,
    assert_error,
    events_named,
    give_role,
    make_user,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _rbac_state(db):
    roles_seed_builtin()
    authorization.cache_clear()
    yield
    authorization.cache_clear()


@pytest.fixture
def admin_role_client(api_client):
    """A client logged in as a user holding the built-in Admin role (not a superuser)."""
    user = make_user("ops@example.com")
    give_role(user, "Admin")
    api_client.force_authenticate(user)
    api_client.user = user
    return api_client


def role_id(name: str) -> str:
    return str(Role.objects.get(name=name).pk)


# --- Catalogue --------------------------------------------------------------------------


def test_every_context_declares_its_permissions():
    names = set(catalogue())
    assert {
        "providers.read", "providers.add", "providers.change", "providers.delete",
        "providers.use", "memory.read", "memory.write", "memory.manage", "tools.read",
        "tools.manage", "tools.execute", "documents.read", "documents.edit",
        "documents.share", "security.users.manage", "security.tokens.manage",
        "security.roles.manage", "security.policies.manage", "security.secrets.encrypt",
        "security.secrets.decrypt", "security.keys.rotate", "security.audit.read",
    } <= names  # fmt: skip


def test_the_catalogue_is_listed_for_any_signed_in_user(api_client):
    api_client.force_authenticate(make_user())

    response = api_client.get("/api/v1/rbac/permissions")

    assert response.status_code == 200
    listed = {row["name"]: row["description"] for row in response.json()}
    assert listed == catalogue()


def test_the_catalogue_needs_a_signed_in_user(api_client):
    assert_error(api_client.get("/api/v1/rbac/permissions"), 401, "not_authenticated")


# --- Roles ------------------------------------------------------------------------------


def test_built_in_roles_are_listed(admin_client):
    response = admin_client.get("/api/v1/rbac/roles")

    assert response.status_code == 200
    rows = {row["name"]: row for row in response.json()["results"]}
    assert {"Owner", "Admin", "Developer", "Viewer"} <= set(rows)
    assert rows["Owner"]["permissions"] == ["*"]
    assert rows["Viewer"]["built_in"] is True


def test_a_custom_role_is_created_audited_and_effective(admin_client):
    response = admin_client.post(
        "/api/v1/rbac/roles",
        {"name": "Librarian", "permissions": ["memory.*", "documents.read"], "description": "x"},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["built_in"] is False
    assert body["permissions"] == ["memory.*", "documents.read"]
    (event,) = events_named("security.RoleCreated")
    assert event.payload["role_name"] == "Librarian"
    user = make_user()
    give_role(user, "Librarian")
    assert authorize(actor_for(user), "memory.delete")


def test_a_pattern_matching_no_declared_permission_is_refused(admin_client):
    response = admin_client.post(
        "/api/v1/rbac/roles",
        {"name": "Typo", "permissions": ["memroy.read", "providers.use"]},
        format="json",
    )

    error = assert_error(response, 400, "invalid", "permissions")
    assert "'memroy.read' matches no declared permission." in error["fields"]["permissions"]
    assert not Role.objects.filter(name="Typo").exists()


@pytest.mark.parametrize(
    "permissions",
    [["memory.re*"], ["Memory.read"], ["memory..read"], [""], [], ["memory.read; drop"]],
)
def test_malformed_patterns_are_refused(admin_client, permissions):
    response = admin_client.post(
        "/api/v1/rbac/roles", {"name": "Bad", "permissions": permissions}, format="json"
    )

    assert_error(response, 400, field="permissions")


def test_permissions_must_be_a_list_of_strings(admin_client):
    response = admin_client.post(
        "/api/v1/rbac/roles", {"name": "Bad", "permissions": "memory.read"}, format="json"
    )

    assert_error(response, 400, "invalid", "permissions")


@pytest.mark.parametrize("name", ["", "  ", "<script>", "x" * 101])
def test_bad_role_names_are_refused(admin_client, name):
    response = admin_client.post(
        "/api/v1/rbac/roles", {"name": name, "permissions": ["memory.read"]}, format="json"
    )

    assert_error(response, 400, field="name")


def test_role_names_are_unique_whatever_their_case(admin_client):
    response = admin_client.post(
        "/api/v1/rbac/roles", {"name": "developer", "permissions": ["memory.read"]}, format="json"
    )

    assert_error(response, 409, "conflict", "name")


def test_built_in_roles_cannot_be_deleted(admin_client):
    response = admin_client.delete(f"/api/v1/rbac/roles/{role_id('Developer')}")

    assert_error(response, 400, "built_in_role")
    assert Role.objects.filter(name="Developer").exists()


def test_built_in_roles_cannot_be_renamed_or_given_other_permissions(admin_client):
    url = f"/api/v1/rbac/roles/{role_id('Viewer')}"

    renamed = admin_client.patch(url, {"name": "Readers"}, format="json")
    widened = admin_client.patch(url, {"permissions": ["*"]}, format="json")

    assert_error(renamed, 400, "invalid", "name")
    assert_error(widened, 400, "invalid", "permissions")
    assert Role.objects.get(pk=role_id("Viewer")).permissions == ["*.read"]


def test_a_built_in_role_may_be_made_to_require_mfa(admin_client):
    response = admin_client.patch(
        f"/api/v1/rbac/roles/{role_id('Owner')}", {"requires_mfa": True}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["requires_mfa"] is True
    (event,) = events_named("security.RoleUpdated")
    assert event.payload["changed"] == ["requires_mfa"]


def test_a_custom_role_is_changed_and_deleted_with_its_assignments(admin_client):
    role = Role.objects.create(name="Temp", permissions=["memory.read"])
    user = make_user()
    give_role(user, "Temp")
    assert authorize(actor_for(user), "memory.read")

    changed = admin_client.patch(
        f"/api/v1/rbac/roles/{role.pk}", {"name": "Temporary", "permissions": ["tools.read"]},
        format="json",
    )  # fmt: skip
    assert changed.status_code == 200
    assert not authorize(actor_for(user), "memory.read")
    assert authorize(actor_for(user), "tools.read")

    deleted = admin_client.delete(f"/api/v1/rbac/roles/{role.pk}")
    assert deleted.status_code == 204
    assert not RoleAssignment.objects.filter(user=user).exists()
    assert not authorize(actor_for(user), "tools.read")
    (event,) = events_named("security.RoleDeleted")
    assert event.payload["assignments_removed"] == 1


def test_an_unknown_role_is_404(admin_client):
    assert_error(admin_client.get(f"/api/v1/rbac/roles/{uuid.uuid4()}"), 404, "not_found")


# --- Assignments ------------------------------------------------------------------------


def test_a_role_is_assigned_by_email_and_unassigned(admin_client):
    user = make_user("dev@example.com")

    created = admin_client.post(
        "/api/v1/rbac/assignments", {"role": "Developer", "user": "DEV@example.com"},
        format="json",
    )  # fmt: skip

    assert created.status_code == 201, created.content
    body = created.json()
    assert body["user"] == {"id": str(user.pk), "email": "dev@example.com"}
    assert body["group"] is None
    assert body["role"]["name"] == "Developer"
    assert authorize(actor_for(user), "providers.use")
    listed = admin_client.get(f"/api/v1/rbac/assignments?user={user.pk}").json()["results"]
    assert [row["id"] for row in listed] == [body["id"]]

    removed = admin_client.delete(f"/api/v1/rbac/assignments/{body['id']}")

    assert removed.status_code == 204
    assert not authorize(actor_for(user), "providers.use")
    assert events_named("security.RoleAssigned")[0].payload["user_id"] == str(user.pk)
    assert events_named("security.RoleUnassigned")[0].payload["role_name"] == "Developer"


def test_a_role_is_assigned_to_a_group_by_name_and_reaches_its_members(admin_client):
    user = make_user()
    user.groups.add(Group.objects.create(name="analysts"))

    response = admin_client.post(
        "/api/v1/rbac/assignments", {"role": role_id("Viewer"), "group": "analysts"},
        format="json",
    )  # fmt: skip

    assert response.status_code == 201, response.content
    assert response.json()["group"] == "analysts"
    assert response.json()["user"] is None
    assert authorize(actor_for(user), "memory.read").rules == ("role:Viewer",)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "Developer"}, "user"),
        ({"role": "Developer", "user": "a@example.com", "group": "g"}, "user"),
        ({"role": "Nope", "user": "root@example.com"}, "role"),
        ({"role": "Developer", "user": "ghost@example.com"}, "user"),
        ({"role": "Developer", "group": "no-such-group"}, "group"),
        ({"user": "root@example.com"}, "role"),
    ],
)
def test_bad_assignments_name_the_field(admin_client, body, field):
    response = admin_client.post("/api/v1/rbac/assignments", body, format="json")

    assert_error(response, 400, "invalid", field)


def test_assigning_a_role_twice_conflicts(admin_client):
    user = make_user()
    give_role(user, "Viewer")

    response = admin_client.post(
        "/api/v1/rbac/assignments", {"role": "Viewer", "user": str(user.pk)}, format="json"
    )

    assert_error(response, 409, "conflict", "role")


# --- Nobody hands on what they do not hold ----------------------------------------------


def test_an_admin_cannot_make_anyone_owner(admin_role_client):
    target = make_user()

    response = admin_role_client.post(
        "/api/v1/rbac/assignments", {"role": "Owner", "user": str(target.pk)}, format="json"
    )

    error = assert_error(response, 403, "permission_denied")
    assert "security.keys.rotate" in error["message"]
    assert not RoleAssignment.objects.filter(user=target).exists()
    (event,) = events_named("security.AccessDenied")
    assert event.payload["actor_id"] == str(admin_role_client.user.pk)


def test_an_admin_cannot_write_a_role_wider_than_their_own(admin_role_client):
    response = admin_role_client.post(
        "/api/v1/rbac/roles", {"name": "Everything", "permissions": ["*"]}, format="json"
    )

    assert_error(response, 403, "permission_denied")
    assert not Role.objects.filter(name="Everything").exists()


def test_an_admin_may_assign_roles_within_their_own(admin_role_client):
    target = make_user()

    response = admin_role_client.post(
        "/api/v1/rbac/assignments", {"role": "Developer", "user": str(target.pk)}, format="json"
    )

    assert response.status_code == 201


# --- REST refusals ----------------------------------------------------------------------


def test_a_user_without_the_permission_gets_a_403_in_the_common_shape(api_client):
    user = make_user()
    give_role(user, "Developer")
    api_client.force_authenticate(user)

    response = api_client.post(
        "/api/v1/rbac/roles", {"name": "Mine", "permissions": ["*"]}, format="json"
    )

    error = assert_error(response, 403, "permission_denied")
    assert "security.roles.manage" in error["message"]
    assert "no role or grant allows" in error["message"]
    (event,) = events_named("security.AccessDenied")
    assert event.payload["action"] == "security.roles.manage"
    assert event.payload["actor_id"] == str(user.pk)
    assert not Role.objects.filter(name="Mine").exists()


def test_anonymous_callers_are_not_authenticated(api_client):
    assert_error(api_client.get("/api/v1/rbac/roles"), 401, "not_authenticated")
    assert events_named("security.AccessDenied") == []


def test_the_permission_class_checks_the_object_it_is_given():
    user = make_user()
    permission = Authorized(
        "memory.read", resource=lambda request, view: Resource("memory.space", view.space_id)
    )()
    request = SimpleNamespace(user=user, auth=None, META={"REMOTE_ADDR": "198.51.100.1"})
    view = SimpleNamespace(space_id="s-1")

    with pytest.raises(PermissionDeniedError, match=r"memory\.read"):
        permission.has_permission(request, view)

    grant_add(
        actor=SYSTEM,
        principal=user.email,
        action="memory.read",
        resource_type="memory.space",
        resource_id="s-1",
    )
    assert permission.has_permission(request, view)


# --- Object grants ----------------------------------------------------------------------


def test_grants_are_added_listed_and_removed(admin_client):
    user = make_user("reader@example.com")
    body = {
        "principal": "reader@example.com",
        "action": "memory.read",
        "resource_type": "memory.space",
        "resource_id": "space-9",
    }

    added = admin_client.post("/api/v1/rbac/grants", body, format="json")
    again = admin_client.post("/api/v1/rbac/grants", body, format="json")

    assert added.status_code == 201, added.content
    grant = added.json()
    assert grant["principal_type"] == "user"
    assert grant["principal_id"] == str(user.pk)
    assert again.status_code == 200
    assert again.json()["id"] == grant["id"]
    assert authorize(actor_for(user), "memory.read", Resource("memory.space", "space-9"))
    listed = admin_client.get("/api/v1/rbac/grants?resource_type=memory.space&resource_id=space-9")
    assert [row["id"] for row in listed.json()["results"]] == [grant["id"]]

    removed = admin_client.delete(f"/api/v1/rbac/grants?{urlencode(body)}")

    assert removed.status_code == 204
    assert not authorize(actor_for(user), "memory.read", Resource("memory.space", "space-9"))
    assert events_named("security.GrantAdded")[0].payload["grant_id"] == grant["id"]
    assert events_named("security.GrantRemoved")[0].payload["resource_id"] == "space-9"
    assert_error(admin_client.delete("/api/v1/rbac/grants", body, format="json"), 404)


def test_a_grant_to_a_group_is_listed_by_group(admin_client):
    Group.objects.create(name="team")
    body = {
        "principal": "group:team",
        "action": "documents.edit",
        "resource_type": "ui.document",
        "resource_id": "doc-1",
    }

    added = admin_client.post("/api/v1/rbac/grants", body, format="json")

    assert added.status_code == 201
    assert added.json()["principal_type"] == "group"
    listed = admin_client.get("/api/v1/rbac/grants?group=team").json()["results"]
    assert [row["resource_id"] for row in listed] == ["doc-1"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"action": "memory.fly"}, "action"),
        ({"resource_type": "memory"}, "resource_type"),
        ({"resource_type": "Memory.Space"}, "resource_type"),
        ({"principal": "nobody-at-all"}, "principal"),
        ({"resource_id": ""}, "resource_id"),
        ({"resource_id": "x" * 256}, "resource_id"),
    ],
)
def test_bad_grants_name_the_field(admin_client, change, field):
    make_user("reader@example.com")
    body = {
        "principal": "reader@example.com",
        "action": "memory.read",
        "resource_type": "memory.space",
        "resource_id": "space-9",
        **change,
    }

    response = admin_client.post("/api/v1/rbac/grants", body, format="json")

    assert_error(response, 400, "invalid", field)


def test_granting_an_action_you_do_not_hold_is_refused(api_client):
    user = make_user()
    Role.objects.create(name="Granter", permissions=["security.roles.manage"])
    give_role(user, "Granter")
    api_client.force_authenticate(user)

    response = api_client.post(
        "/api/v1/rbac/grants",
        {
            "principal": user.email,
            "action": "memory.read",
            "resource_type": "memory.space",
            "resource_id": "s",
        },
        format="json",
    )

    assert_error(response, 403, "permission_denied")
    assert not UserObjectPermission.objects.exists()
