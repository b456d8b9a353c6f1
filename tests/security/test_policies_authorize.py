"""Cedar policies inside authorize(): they forbid what RBAC allowed, and say so."""

from __future__ import annotations

import pytest

from lumina.security.api import authorize
from lumina.security.models.policies import Policy, PolicyVersion
from lumina.security.services import authorization
from lumina.security.services.policies import policy_create, policy_delete, policy_update
from lumina.security.services.rbac import roles_seed_builtin
from lumina.security.types import Actor, Resource
from tests.security.rbac_support import SYSTEM, actor_for, give_role, make_user, token_actor

pytestmark = pytest.mark.django_db

NO_GPT_X_FOR_DEVELOPERS = """
// Developers may not call model gpt-x.
forbid (principal, action == Lumina::Action::"providers.use", resource)
when { principal.roles.contains("Developer") && resource.model == "gpt-x" };
"""
TOOLS_NEED_AN_EXPLICIT_SCOPE = """
forbid (principal, action == Lumina::Action::"tools.execute", resource)
when { principal.via_token && !context.scopes.contains("tools.execute") };
"""
DECRYPT_ONLY_IN_PROVIDERS = """
forbid (principal, action == Lumina::Action::"security.secrets.decrypt", resource)
unless { context.caller_context == "providers" };
"""


@pytest.fixture(autouse=True)
def _rbac_state(db):
    roles_seed_builtin()
    authorization.cache_clear()
    yield
    authorization.cache_clear()


def model(name: str) -> Resource:
    return Resource("providers.model", f"m-{name}", {"model": name, "context_window": 128_000})


def test_a_policy_forbids_what_a_role_allows_and_the_decision_names_it():
    developer = make_user()
    give_role(developer, "Developer")
    policy = policy_create(actor=SYSTEM, name="No gpt-x", cedar_text=NO_GPT_X_FOR_DEVELOPERS)

    denied = authorize(actor_for(developer), "providers.use", model("gpt-x"))
    allowed = authorize(actor_for(developer), "providers.use", model("gpt-small"))

    assert not denied.allowed
    assert denied.rules == (f"policy:{policy.id}@v1",)
    assert denied.reason == "forbidden by policy No gpt-x"
    assert allowed.allowed
    assert allowed.rules == ("role:Developer",)


def test_a_policy_about_a_role_spares_people_without_it():
    admin = make_user()
    give_role(admin, "Admin")
    policy_create(actor=SYSTEM, name="No gpt-x", cedar_text=NO_GPT_X_FOR_DEVELOPERS)

    assert authorize(actor_for(admin), "providers.use", model("gpt-x")).rules == ("role:Admin",)


def test_policies_cannot_allow_what_rbac_refused():
    nobody = make_user()
    policy_create(actor=SYSTEM, name="No gpt-x", cedar_text=NO_GPT_X_FOR_DEVELOPERS)

    decision = authorize(actor_for(nobody), "providers.use", model("gpt-small"))

    assert not decision.allowed
    assert decision.rules == ()


def test_tools_run_through_a_token_only_with_the_explicit_scope():
    user = make_user()
    give_role(user, "Developer")
    policy = policy_create(
        actor=SYSTEM, name="Explicit tools", cedar_text=TOOLS_NEED_AN_EXPLICIT_SCOPE
    )

    wildcard = authorize(token_actor(user, {"tools.*"}), "tools.execute")
    explicit = authorize(token_actor(user, {"tools.execute"}), "tools.execute")
    session = authorize(actor_for(user), "tools.execute")

    assert not wildcard.allowed
    assert wildcard.rules == (f"policy:{policy.id}@v1",)
    assert explicit.allowed
    assert session.allowed


def test_secrets_are_decrypted_only_by_the_providers_context():
    policy = policy_create(
        actor=SYSTEM, name="Decrypt in providers", cedar_text=DECRYPT_ONLY_IN_PROVIDERS
    )
    root = make_user(is_superuser=True, is_staff=True)

    providers = authorize(Actor.system("providers"), "security.secrets.decrypt")
    memory = authorize(Actor.system("memory"), "security.secrets.decrypt")
    person = authorize(actor_for(root), "security.secrets.decrypt")
    on_behalf = authorize(actor_for(root, context="providers"), "security.secrets.decrypt")

    assert providers.allowed
    assert providers.rules == ("system:providers",)
    assert not memory.allowed
    assert memory.rules == (f"policy:{policy.id}@v1",)
    assert not person.allowed  # superusers are bound by policies too
    assert on_behalf.allowed


def test_a_new_version_applies_at_once_and_is_named():
    developer = make_user()
    give_role(developer, "Developer")
    policy = policy_create(actor=SYSTEM, name="No gpt-x", cedar_text=NO_GPT_X_FOR_DEVELOPERS)
    assert not authorize(actor_for(developer), "providers.use", model("gpt-x"))

    policy_update(
        actor=SYSTEM,
        policy_id=policy.id,
        cedar_text=NO_GPT_X_FOR_DEVELOPERS.replace("gpt-x", "gpt-y"),
    )

    assert authorize(actor_for(developer), "providers.use", model("gpt-x"))
    refused = authorize(actor_for(developer), "providers.use", model("gpt-y"))
    assert refused.rules == (f"policy:{policy.id}@v2",)


def test_disabled_and_deleted_policies_no_longer_apply():
    developer = make_user()
    give_role(developer, "Developer")
    policy = policy_create(actor=SYSTEM, name="No gpt-x", cedar_text=NO_GPT_X_FOR_DEVELOPERS)
    actor = actor_for(developer)

    policy_update(actor=SYSTEM, policy_id=policy.id, enabled=False)
    assert authorize(actor, "providers.use", model("gpt-x"))

    policy_update(actor=SYSTEM, policy_id=policy.id, enabled=True)
    assert not authorize(actor, "providers.use", model("gpt-x"))

    policy_delete(actor=SYSTEM, policy_id=policy.id)
    assert authorize(actor, "providers.use", model("gpt-x"))


def test_a_forbid_that_cannot_be_evaluated_fails_closed():
    developer = make_user()
    give_role(developer, "Developer")
    policy = policy_create(actor=SYSTEM, name="No gpt-x", cedar_text=NO_GPT_X_FOR_DEVELOPERS)

    # No "model" attribute: the policy's condition errors instead of answering.
    decision = authorize(actor_for(developer), "providers.use", Resource("providers.model", "m"))

    assert not decision.allowed
    assert decision.rules == (f"policy:{policy.id}@v1",)
    assert "could not be evaluated" in decision.reason
    assert "model" in decision.reason


def test_a_stored_policy_that_no_longer_parses_refuses_everything():
    developer = make_user()
    give_role(developer, "Developer")
    policy = Policy.objects.create(name="Broken")
    PolicyVersion.objects.create(policy=policy, version=1, cedar="forbid(principal, action")
    authorization.cache_clear()

    decision = authorize(actor_for(developer), "memory.read")

    assert not decision.allowed
    assert decision.rules == (f"policy:{policy.id}@v1",)
    assert "cannot be loaded" in decision.reason


def test_policies_scoped_to_other_actions_cost_nothing(
    django_assert_num_queries, generations_steady
):
    developer = make_user()
    give_role(developer, "Developer")
    policy_create(actor=SYSTEM, name="No gpt-x", cedar_text=NO_GPT_X_FOR_DEVELOPERS)
    actor = actor_for(developer)
    assert authorize(actor, "memory.read")

    with django_assert_num_queries(0):
        assert authorize(actor, "memory.read").rules == ("role:Developer",)


def test_authorize_with_an_applicable_policy_makes_no_query_when_warm(
    django_assert_num_queries,
):
    # Its cost per call is measured by benchmarks/security.py ("role + policy").
    developer = make_user()
    give_role(developer, "Developer")
    policy_create(actor=SYSTEM, name="No gpt-x", cedar_text=NO_GPT_X_FOR_DEVELOPERS)
    actor, resource = actor_for(developer), model("gpt-small")
    decision = authorize(actor, "providers.use", resource)  # warms the caches
    assert decision

    with django_assert_num_queries(0):
        assert authorize(actor, "providers.use", resource) == decision


def test_no_policy_can_lock_out_those_who_manage_policies():
    owner = make_user()
    give_role(owner, "Owner")
    policy_create(
        actor=SYSTEM, name="Lock-down", cedar_text="forbid (principal, action, resource);"
    )
    broken = Policy.objects.create(name="Broken")
    PolicyVersion.objects.create(policy=broken, version=1, cedar="forbid (")
    authorization.cache_clear()

    assert not authorize(actor_for(owner), "memory.read")
    assert authorize(actor_for(owner), "security.policies.manage").rules == ("role:Owner",)


OWNERS_ONLY_SHARE = """
forbid (principal, action == Lumina::Action::"documents.share", resource)
unless { resource has owner_id && resource.owner_id == principal.id };
"""


def test_ownership_rules_compare_resource_attributes_with_the_principal():
    owner, other = make_user(), make_user()
    give_role(owner, "Admin")
    give_role(other, "Admin")
    policy_create(actor=SYSTEM, name="Owners share", cedar_text=OWNERS_ONLY_SHARE)
    document = Resource("ui.document", "d1", {"owner_id": str(owner.pk)})

    assert authorize(actor_for(owner), "documents.share", document)
    assert not authorize(actor_for(other), "documents.share", document)


def test_resource_attributes_cannot_forge_an_entity_reference():
    other = make_user()
    give_role(other, "Admin")
    policy_create(
        actor=SYSTEM,
        name="Owners share",
        cedar_text=OWNERS_ONLY_SHARE.replace(
            "resource.owner_id == principal.id", "resource.owner_id == principal"
        ),
    )
    forged = {"owner_id": {"__entity": {"type": "Lumina::User", "id": str(other.pk)}}}

    decision = authorize(actor_for(other), "documents.share", Resource("ui.document", "d1", forged))

    assert not decision.allowed


def test_a_request_cedar_cannot_read_is_refused_without_echoing_it():
    developer = make_user("dev@example.com")
    give_role(developer, "Developer")
    policy_create(actor=SYSTEM, name="No gpt-x", cedar_text=NO_GPT_X_FOR_DEVELOPERS)
    nested: list = []
    for _ in range(200):
        nested = [nested]

    decision = authorize(
        actor_for(developer), "providers.use", Resource("providers.model", "m", {"deep": nested})
    )

    assert not decision.allowed
    assert decision.rules == ("policies",)
    assert decision.reason.startswith("the policies could not be evaluated")
    assert "dev@example.com" not in decision.reason
    assert len(decision.reason) < 400
