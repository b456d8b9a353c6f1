"""authorize(): roles, groups, object grants, MFA, token scopes, system actors and caching."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Group

from lumina.kernel import generations
from lumina.kernel.errors import PermissionDeniedError
from lumina.kernel.models import Generation
from lumina.kernel.permissions import catalogue
from lumina.security.api import authorize, require
from lumina.security.models.rbac import Role, RoleAssignment
from lumina.security.services import authorization
from lumina.security.services.rbac import (
    OWNER_ONLY,
    grant_add,
    role_assignment_create,
    role_assignment_delete,
    roles_seed_builtin,
)
from lumina.security.types import Actor, Resource
from tests.security.rbac_support import (
    SYSTEM,
    actor_for,
    events_named,
    give_group_role,
    give_role,
    make_user,
    token_actor,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _rbac_state(db):
    roles_seed_builtin()
    authorization.cache_clear()
    yield
    authorization.cache_clear()


def test_a_role_whose_pattern_matches_allows_and_is_named():
    user = make_user()
    give_role(user, "Developer")

    decision = authorize(actor_for(user), "memory.write")

    assert decision.allowed
    assert decision.rules == ("role:Developer",)


def test_without_a_matching_role_the_action_is_denied():
    user = make_user()
    give_role(user, "Viewer")

    decision = authorize(actor_for(user), "memory.write")

    assert not decision.allowed
    assert "no role or grant allows memory.write" in decision.reason


def test_a_user_without_roles_is_denied_everything():
    assert not authorize(actor_for(make_user()), "providers.read")


def test_a_trailing_star_covers_deeper_names_but_a_leading_star_one_segment():
    viewer, owner = make_user(), make_user()
    give_role(viewer, "Viewer")  # "*.read"
    give_role(owner, "Owner")  # "*"

    assert authorize(actor_for(viewer), "documents.read")
    assert not authorize(actor_for(viewer), "security.audit.read")
    assert authorize(actor_for(owner), "security.audit.read")


def test_a_role_held_through_a_group_allows():
    user = make_user()
    group = Group.objects.create(name="engineers")
    user.groups.add(group)
    give_group_role(group, "Developer")

    decision = authorize(actor_for(user), "tools.execute")

    assert decision.allowed
    assert decision.rules == ("role:Developer",)


def test_leaving_the_group_takes_its_roles_away_at_once():
    user = make_user()
    group = Group.objects.create(name="engineers")
    give_group_role(group, "Developer")
    user.groups.add(group)
    assert authorize(actor_for(user), "tools.execute")

    user.groups.remove(group)

    assert not authorize(actor_for(user), "tools.execute")


def test_an_object_grant_allows_that_object_only_without_any_role():
    user = make_user()
    space = Resource("memory.space", "space-1")
    grant, created = grant_add(
        actor=SYSTEM,
        principal=str(user.pk),
        action="memory.read",
        resource_type="memory.space",
        resource_id="space-1",
    )
    assert created

    decision = authorize(actor_for(user), "memory.read", space)

    assert decision.allowed
    assert decision.rules == (f"grant:{grant.id}",)
    assert not authorize(actor_for(user), "memory.read", Resource("memory.space", "space-2"))
    assert not authorize(actor_for(user), "memory.write", space)
    assert not authorize(actor_for(user), "memory.read")


def test_an_object_grant_to_a_group_reaches_its_members():
    user = make_user()
    group = Group.objects.create(name="readers")
    user.groups.add(group)
    grant, _ = grant_add(
        actor=SYSTEM,
        principal="group:readers",
        action="documents.edit",
        resource_type="ui.document",
        resource_id="d-7",
    )

    decision = authorize(actor_for(user), "documents.edit", Resource("ui.document", "d-7"))

    assert decision.allowed
    assert decision.rules == (f"grant:{grant.id}",)
    assert grant.id.startswith("group-")


def test_a_role_requiring_mfa_counts_only_for_a_verified_session():
    user = make_user()
    Role.objects.create(name="Operator", permissions=["tools.manage"], requires_mfa=True)
    give_role(user, "Operator")

    unverified = authorize(actor_for(user), "tools.manage")
    verified = authorize(actor_for(user, mfa_verified=True), "tools.manage")
    through_token = authorize(token_actor(user, {"tools.*"}, mfa_verified=True), "tools.manage")

    assert not unverified.allowed
    assert "requires MFA verification" in unverified.reason
    assert verified.allowed
    assert verified.rules == ("role:Operator",)
    assert not through_token.allowed
    assert "cannot be used through an API token" in through_token.reason


def test_a_token_lacking_the_scope_is_denied_whatever_the_roles():
    user = make_user()
    give_role(user, "Owner")

    denied = authorize(token_actor(user, {"memory.read"}), "tools.execute")
    allowed = authorize(token_actor(user, {"memory.read", "tools.*"}), "tools.execute")

    assert not denied.allowed
    assert denied.rules == ("scope",)
    assert "lacks a scope" in denied.reason
    assert allowed.allowed


def test_a_token_scope_never_grants_what_the_roles_do_not():
    user = make_user()
    assert not authorize(token_actor(user, {"*"}), "tools.execute")


def test_superusers_are_allowed_but_still_bound_by_token_scopes():
    root = make_user(is_superuser=True, is_staff=True)

    assert authorize(actor_for(root), "security.keys.rotate").rules == ("superuser",)
    assert not authorize(token_actor(root, {"memory.*"}), "security.keys.rotate")


def test_system_actors_pass_rbac():
    decision = authorize(Actor.system("providers"), "security.secrets.decrypt")

    assert decision.allowed
    assert decision.rules == ("system:providers",)


def test_inactive_and_anonymous_actors_are_denied():
    user = make_user()
    give_role(user, "Owner")

    assert not authorize(actor_for(user, is_active=False), "memory.read")
    assert not authorize(Actor(user_id=None), "memory.read")


def test_assigning_then_unassigning_a_role_changes_the_answer_at_once():
    user = make_user()
    actor = actor_for(user)
    assert not authorize(actor, "providers.use")

    assignment = role_assignment_create(actor=SYSTEM, role="Developer", user=user.email)
    assert authorize(actor, "providers.use")

    role_assignment_delete(actor=SYSTEM, assignment_id=assignment.id)
    assert not authorize(actor, "providers.use")


def test_other_processes_changes_are_seen_once_the_shared_generation_moves(monkeypatch):
    monkeypatch.setattr(generations, "STALENESS_SECONDS", 3600.0)
    user = make_user()
    assignment = give_role(user, "Developer")
    actor = actor_for(user)
    assert authorize(actor, "memory.write")

    # Another process removes the role: this process's memory still has it...
    RoleAssignment.objects.filter(pk=assignment.pk).delete()
    assert authorize(actor, "memory.write")

    # ...until it reads the generation that process bumped in the database (at most
    # STALENESS_SECONDS later; tests/security/test_cross_process.py uses real processes).
    Generation.objects.update_or_create(
        name=authorization.GENERATION, defaults={"value": uuid.uuid4()}
    )
    monkeypatch.setattr(generations, "STALENESS_SECONDS", 0.0)
    assert not authorize(actor, "memory.write")


def test_require_raises_and_audits_a_denial():
    user = make_user()

    with pytest.raises(PermissionDeniedError) as raised:
        require(actor_for(user), "providers.delete", Resource("providers.provider", "p-1"))

    assert "no role or grant allows providers.delete" in raised.value.message
    (event,) = events_named("security.AccessDenied")
    assert event.payload["action"] == "providers.delete"
    assert event.payload["actor_id"] == str(user.pk)
    assert event.payload["resource_id"] == "p-1"
    assert event.payload["outcome"] == "denied"
    assert event.payload["ip_address"] == "203.0.113.7"


def test_require_returns_the_decision_when_allowed():
    user = make_user()
    give_role(user, "Viewer")

    assert require(actor_for(user), "memory.read").rules == ("role:Viewer",)
    assert events_named("security.AccessDenied") == []


def test_seeding_built_in_roles_is_idempotent_and_restores_their_permissions():
    Role.objects.filter(name="Viewer").update(permissions=["*"], requires_mfa=True)

    roles_seed_builtin()
    roles_seed_builtin()

    assert Role.objects.filter(built_in=True).count() == 4
    viewer = Role.objects.get(name="Viewer")
    assert viewer.permissions == ["*.read"]
    assert viewer.requires_mfa  # what people set is kept
    assert "security.keys.rotate" not in Role.objects.get(name="Admin").permissions


def test_authorize_makes_no_query_when_warm(django_assert_num_queries):
    # Its cost per call is measured by benchmarks/security.py.
    user = make_user()
    give_role(user, "Developer")
    actor = actor_for(user)
    assert authorize(actor, "providers.use")  # warms the caches

    with django_assert_num_queries(0):
        authorize(actor, "providers.use")
        authorize(actor, "memory.delete")


def test_an_object_grant_check_is_one_query_and_then_cached(
    django_assert_num_queries, generations_steady
):
    user = make_user()
    user.groups.add(Group.objects.create(name="g"))
    grant_add(
        actor=SYSTEM,
        principal=str(user.pk),
        action="memory.read",
        resource_type="memory.space",
        resource_id="s",
    )
    actor = actor_for(user)
    assert authorize(SYSTEM, "memory.read")  # loads the (empty) policy set
    assert not authorize(actor, "memory.read", Resource("memory.space", "other"))

    with django_assert_num_queries(1):
        assert authorize(actor, "memory.read", Resource("memory.space", "s"))
    with django_assert_num_queries(0):
        assert authorize(actor, "memory.read", Resource("memory.space", "s"))
        assert not authorize(actor, "memory.read", Resource("memory.space", "other"))


def test_admin_holds_every_declared_permission_but_the_owner_only_ones():
    admin = make_user()
    give_role(admin, "Admin")

    refused = {name for name in catalogue() if not authorize(actor_for(admin), name)}

    assert refused == set(OWNER_ONLY)
