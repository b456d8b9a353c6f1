"""security.api's object rules for people's objects: owner, grant, manage; roles never.

A role holding an action does not open someone else's object (documents are private);
the owner holds every action, a grant its own, the ``manage`` permission all; token
scopes and policies still apply. Sharing needs the share action on the object, and no
one hands on or takes back what they do not hold there.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from lumina.kernel.errors import ApplicationError, PermissionDeniedError
from lumina.security.api import (
    Resource,
    object_authorize,
    object_grants,
    object_grants_clear,
    object_grants_set,
    object_ids_granted,
)
from lumina.security.services import authorization
from lumina.security.services.policies import policy_create
from tests.security.rbac_support import (
    SYSTEM,
    actor_for,
    events_named,
    give_role,
    make_user,
    token_actor,
)

pytestmark = pytest.mark.django_db

READ, EDIT, SHARE, MANAGE = (
    "documents.read",
    "documents.edit",
    "documents.share",
    "documents.manage",
)
ACTIONS = ("documents.read", "documents.comment", "documents.edit", "documents.share")


@pytest.fixture
def owner():
    return make_user()


@pytest.fixture
def thing(owner) -> Resource:
    return Resource("ui.document", "d-1", {"owner_id": str(owner.pk)})


def rules(owner) -> dict:
    return {"owner_id": owner.pk, "manage": MANAGE}


def share(actor, principal: str, thing, owner, actions) -> tuple:
    return object_grants_set(
        actor=actor, principal=principal, resource=thing, actions=actions, among=ACTIONS,
        share_action=SHARE, **rules(owner),
    )  # fmt: skip


@pytest.mark.parametrize("role", [None, "Viewer", "Developer", "Admin"])
def test_no_role_opens_someone_elses_object(owner, thing, role):
    other = make_user()
    if role:
        give_role(other, role)
    # The control: the role does hold the action, anywhere authorize is asked.
    if role in ("Developer", "Admin"):
        assert authorization.authorize(actor_for(other), EDIT)
    for action in ACTIONS:
        assert not object_authorize(actor_for(other), action, thing, **rules(owner))


def test_the_owner_holds_every_action_and_the_manage_holder_too(owner, thing):
    manager = make_user()
    give_role(manager, "Owner")
    for action in ACTIONS:
        assert object_authorize(actor_for(owner), action, thing, **rules(owner)).rules == ("owner",)
        assert object_authorize(actor_for(manager), action, thing, **rules(owner))


def test_a_grant_gives_its_action_only_and_through_groups_too(owner, thing):
    reader, member = make_user(), make_user()
    group = Group.objects.create(name="readers")
    member.groups.add(group)

    share(actor_for(owner), reader.email, thing, owner, [READ])
    share(actor_for(owner), "group:readers", thing, owner, [READ, EDIT])

    assert object_authorize(actor_for(reader), READ, thing, **rules(owner))
    assert not object_authorize(actor_for(reader), EDIT, thing, **rules(owner))
    assert object_authorize(actor_for(member), EDIT, thing, **rules(owner))
    assert object_ids_granted(actor_for(member), EDIT, "ui.document") == {"d-1"}
    assert object_ids_granted(actor_for(reader), EDIT, "ui.document") == frozenset()
    assert len(events_named("security.GrantAdded")) == 3


def test_token_scopes_and_policies_still_apply(owner, thing):
    assert not object_authorize(token_actor(owner, {READ}), EDIT, thing, **rules(owner))
    assert object_authorize(token_actor(owner, {READ}), READ, thing, **rules(owner))
    assert object_ids_granted(token_actor(owner, {EDIT}), READ, "ui.document") == frozenset()
    policy_create(
        actor=SYSTEM,
        name="No sharing",
        cedar_text='forbid (principal, action == Lumina::Action::"documents.share", resource);',
    )
    assert not object_authorize(actor_for(owner), SHARE, thing, **rules(owner))


def test_sharing_needs_the_share_action_and_is_audited(owner, thing):
    reader = make_user()
    share(actor_for(owner), reader.email, thing, owner, [READ])

    with pytest.raises(PermissionDeniedError):
        share(actor_for(reader), make_user().email, thing, owner, [READ])

    denied = events_named("security.AccessDenied")
    assert [event.payload["action"] for event in denied] == [SHARE]


def test_a_sharer_hands_on_and_takes_back_only_what_they_hold(owner, thing):
    sharer, editor, newcomer = make_user(), make_user(), make_user()
    share(actor_for(owner), sharer.email, thing, owner, [READ, SHARE])
    share(actor_for(owner), editor.email, thing, owner, [READ, EDIT])

    with pytest.raises(PermissionDeniedError, match=r"documents\.edit"):
        share(actor_for(sharer), newcomer.email, thing, owner, [READ, EDIT])
    with pytest.raises(PermissionDeniedError, match=r"documents\.edit"):
        share(actor_for(sharer), editor.email, thing, owner, [])
    granted = share(actor_for(sharer), newcomer.email, thing, owner, [READ])

    assert [grant.action for grant in granted] == [READ]
    held = {(g.principal_label, g.action) for g in object_grants(resource_type="ui.document",
                                                                resource_id="d-1")}  # fmt: skip
    assert (editor.email, EDIT) in held
    assert (newcomer.email, EDIT) not in held


def test_bad_input_names_the_field(owner, thing):
    with pytest.raises(ApplicationError) as unknown:
        share(actor_for(owner), "nobody@nowhere.example", thing, owner, [READ])
    assert "principal" in unknown.value.fields
    with pytest.raises(ApplicationError) as outside:
        share(actor_for(owner), make_user().email, thing, owner, ["security.keys.rotate"])
    assert "actions" in outside.value.fields
    with pytest.raises(ApplicationError) as themselves:
        share(actor_for(owner), owner.email, thing, owner, [READ])
    assert "principal" in themselves.value.fields


def test_clearing_removes_every_grant_on_the_object(owner, thing):
    share(actor_for(owner), make_user().email, thing, owner, [READ, EDIT])

    assert object_grants_clear(actor=SYSTEM, resource_type="ui.document", resource_id="d-1") == 2

    assert object_grants(resource_type="ui.document", resource_id="d-1") == ()
    assert len(events_named("security.GrantRemoved")) == 2
