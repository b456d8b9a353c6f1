"""/api/v1/policies/: Cedar validation, versions, the schema, and the evaluate endpoint."""

from __future__ import annotations

import uuid

import pytest

from lumina.security.models.policies import Policy, PolicyVersion
from lumina.security.services import authorization
from lumina.security.services.rbac import roles_seed_builtin
from tests.security.rbac_support import (
    assert_error,
    events_named,
    give_role,
    make_user,
)

pytestmark = pytest.mark.django_db

NO_GPT_X = (
    'forbid (principal, action == Lumina::Action::"providers.use", resource)\n'
    'when { principal.roles.contains("Developer") && resource.model == "gpt-x" };'
)
DECRYPT_ONLY_IN_PROVIDERS = (
    'forbid (principal, action == Lumina::Action::"security.secrets.decrypt", resource)\n'
    'unless { context.caller_context == "providers" };'
)


@pytest.fixture(autouse=True)
def _rbac_state(db):
    roles_seed_builtin()
    authorization.cache_clear()
    yield
    authorization.cache_clear()


def create(client, name: str = "No gpt-x", text: str = NO_GPT_X, **extra):
    return client.post("/api/v1/policies", {"name": name, "policy": text, **extra}, format="json")


def test_a_policy_is_created_as_version_one_and_audited(admin_client, admin_user):
    response = create(admin_client, description="Cost control")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["version"] == 1
    assert body["policy"] == NO_GPT_X
    assert body["enabled"] is True
    (event,) = events_named("security.PolicyCreated")
    assert event.payload["cedar"] == NO_GPT_X
    assert event.payload["actor_id"] == str(admin_user.pk)
    (version,) = PolicyVersion.objects.all()
    assert version.created_by_id == admin_user.pk


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'forbid (principal, action, resource)\nwhen { principal.email == "x" && };',
            "line 2, column 34: unexpected token `}`",
        ),
        (
            'forbid (principal, action, resource) when { "open };',
            "line 1, column 45: invalid token",
        ),
        (
            "forbid (principal, action, resource);\nforbid (principal, acton, resource);",
            "line 2, column 1: found an invalid variable in the policy scope: acton",
        ),
        (
            "permit (principal, action, resource);",
            "line 1, column 1: only forbid statements are allowed",
        ),
        (
            'forbid (principal, action == Lumina::Action::"memory.fly", resource);',
            'line 1, column 1: unrecognized action `Lumina::Action::"memory.fly"`',
        ),
        (
            "forbid (principal, action, resource) when { principal.shoe_size > 3 };",
            "attribute `shoe_size` on entity type `Lumina::User` not found",
        ),
        (
            "forbid (principal, action, resource) when { context.scopes };",
            "unexpected type: expected Bool",
        ),
        (
            "forbid (principal == ?principal, action, resource);",
            "templates (?principal, ?resource) are not supported",
        ),
        ("// only a comment", "a policy needs at least one statement"),
    ],
)
def test_invalid_cedar_is_refused_naming_the_field_with_cedars_message(
    admin_client, text, expected
):
    response = create(admin_client, text=text)

    error = assert_error(response, 400, "invalid", "policy")
    assert any(expected in problem for problem in error["fields"]["policy"]), error
    assert expected in error["message"] or error["message"].startswith("Invalid policy: line")
    assert not Policy.objects.exists()
    assert events_named("security.PolicyCreated") == []


@pytest.mark.parametrize("text", ["", "   ", "x" * 65_537])
def test_empty_or_huge_policies_are_refused(admin_client, text):
    assert_error(create(admin_client, text=text), 400, "invalid", "policy")


def test_policy_names_are_unique(admin_client):
    create(admin_client)

    assert_error(create(admin_client, name="NO GPT-X"), 409, "conflict", "name")


def test_an_update_creates_a_version_and_keeps_the_old_one(admin_client):
    policy_id = create(admin_client).json()["id"]
    changed = NO_GPT_X.replace("gpt-x", "gpt-y")

    response = admin_client.patch(
        f"/api/v1/policies/{policy_id}", {"policy": changed}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["version"] == 2
    assert response.json()["policy"] == changed
    versions = admin_client.get(f"/api/v1/policies/{policy_id}/versions").json()["results"]
    assert [(row["version"], row["policy"]) for row in versions] == [(2, changed), (1, NO_GPT_X)]
    first = admin_client.get(f"/api/v1/policies/{policy_id}/versions/1")
    assert first.json()["policy"] == NO_GPT_X
    (event,) = events_named("security.PolicyUpdated")
    assert event.payload["policy_version"] == 2
    assert event.payload["cedar"] == changed
    assert event.payload["changed"] == ["policy"]


def test_the_same_text_or_other_fields_make_no_new_version(admin_client):
    policy_id = create(admin_client).json()["id"]

    same = admin_client.patch(f"/api/v1/policies/{policy_id}", {"policy": NO_GPT_X}, format="json")
    disabled = admin_client.patch(
        f"/api/v1/policies/{policy_id}", {"enabled": False, "description": "off"}, format="json"
    )

    assert same.json()["version"] == 1
    assert disabled.json()["version"] == 1
    assert disabled.json()["enabled"] is False
    assert PolicyVersion.objects.count() == 1
    (event,) = events_named("security.PolicyUpdated")
    assert event.payload["changed"] == ["description", "enabled"]
    assert event.payload["cedar"] is None


def test_an_invalid_update_keeps_the_version_in_force(admin_client):
    policy_id = create(admin_client).json()["id"]

    response = admin_client.patch(
        f"/api/v1/policies/{policy_id}", {"policy": "forbid (principal"}, format="json"
    )

    assert_error(response, 400, "invalid", "policy")
    assert admin_client.get(f"/api/v1/policies/{policy_id}").json()["version"] == 1


def test_a_policy_is_deleted_and_audited(admin_client):
    policy_id = create(admin_client).json()["id"]

    assert admin_client.delete(f"/api/v1/policies/{policy_id}").status_code == 204

    assert_error(admin_client.get(f"/api/v1/policies/{policy_id}"), 404, "not_found")
    assert not PolicyVersion.objects.exists()
    (event,) = events_named("security.PolicyDeleted")
    assert event.payload["policy_id"] == policy_id


def test_unknown_policies_and_versions_are_404(admin_client):
    policy_id = create(admin_client).json()["id"]

    assert_error(admin_client.get(f"/api/v1/policies/{uuid.uuid4()}"), 404, "not_found")
    assert_error(admin_client.get(f"/api/v1/policies/{policy_id}/versions/9"), 404, "not_found")


def test_policies_are_listed(admin_client):
    create(admin_client, name="b")
    create(admin_client, name="a", text=DECRYPT_ONLY_IN_PROVIDERS)

    rows = admin_client.get("/api/v1/policies").json()["results"]

    assert [row["name"] for row in rows] == ["a", "b"]
    assert rows[0]["policy"] == DECRYPT_ONLY_IN_PROVIDERS


def test_the_schema_names_every_declared_action(admin_client):
    body = admin_client.get("/api/v1/policies/schema").json()

    assert 'action "providers.use"' in body["cedar"]
    assert "token_scopes" in body["cedar"]
    assert "security.secrets.decrypt" in body["json"]["Lumina"]["actions"]


def test_people_without_the_permission_get_a_403(api_client):
    user = make_user()
    give_role(user, "Developer")
    api_client.force_authenticate(user)

    error = assert_error(create(api_client), 403, "permission_denied")

    assert "security.policies.manage" in error["message"]
    assert not Policy.objects.exists()
    assert events_named("security.AccessDenied")[0].payload["action"] == "security.policies.manage"


# --- Evaluate ---------------------------------------------------------------------------


def evaluate(client, **body):
    return client.post("/api/v1/policies/evaluate", body, format="json")


def test_evaluate_explains_a_policy_refusal(admin_client):
    developer = make_user("dev@example.com")
    give_role(developer, "Developer")
    policy_id = create(admin_client).json()["id"]

    response = evaluate(
        admin_client,
        principal=str(developer.pk),
        action="providers.use",
        resource={"type": "providers.model", "id": "m1", "attributes": {"model": "gpt-x"}},
    )

    assert response.status_code == 200, response.content
    body = response.json()
    rule = f"policy:{policy_id}@v1"
    assert body["allowed"] is False
    assert body["rules"] == [rule]
    assert body["reason"] == "forbidden by policy No gpt-x"
    assert body["rbac"] == {
        "allowed": True,
        "reason": "role Developer allows providers.use",
        "rules": ["role:Developer"],
        "roles": ["Developer"],
    }
    assert body["policies"] == {"applicable": [rule], "forbidding": [rule], "errors": []}
    assert events_named("security.AccessDenied") == []  # a question, not a request


def test_evaluate_explains_an_allowed_request(admin_client):
    developer = make_user("dev@example.com")
    give_role(developer, "Developer")
    create(admin_client)

    body = evaluate(
        admin_client,
        principal="dev@example.com",
        action="providers.use",
        resource={"type": "providers.model", "id": "m2", "attributes": {"model": "gpt-small"}},
    ).json()

    assert body["allowed"] is True
    assert body["rules"] == ["role:Developer"]
    assert body["policies"]["forbidding"] == []


def test_evaluate_shows_what_policies_say_even_when_rbac_refused(admin_client):
    developer = make_user()
    give_role(developer, "Developer")
    policy_id = create(admin_client).json()["id"]

    body = evaluate(
        admin_client,
        principal=str(developer.pk),
        action="providers.use",
        resource={"type": "providers.model", "attributes": {"model": "gpt-x"}},
        context={"scopes": ["memory.*"]},
    ).json()

    assert body["allowed"] is False
    assert body["rules"] == ["scope"]
    assert body["rbac"]["rules"] == ["scope"]
    assert body["policies"]["forbidding"] == [f"policy:{policy_id}@v1"]


def test_evaluate_a_system_principal_against_the_decrypt_policy(admin_client):
    policy_id = create(admin_client, name="Decrypt", text=DECRYPT_ONLY_IN_PROVIDERS).json()["id"]

    providers = evaluate(
        admin_client, principal="system:providers", action="security.secrets.decrypt"
    ).json()
    memory = evaluate(
        admin_client, principal="system:memory", action="security.secrets.decrypt"
    ).json()

    assert providers["allowed"] is True
    assert providers["rules"] == ["system:providers"]
    assert memory["allowed"] is False
    assert memory["rules"] == [f"policy:{policy_id}@v1"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"principal": "ghost@example.com", "action": "memory.read"}, "principal"),
        ({"principal": "system:", "action": "memory.read"}, "principal"),
        ({"principal": "root@example.com", "action": "not a name"}, "action"),
        ({"principal": "root@example.com"}, "action"),
        ({"principal": "root@example.com", "action": "memory.read", "resource": {}}, "resource"),
        (
            {"principal": "root@example.com", "action": "memory.read", "context": {"ip": "x"}},
            "context",
        ),
        (
            {
                "principal": "root@example.com",
                "action": "memory.read",
                "resource": {"type": "m.s", "attributes": "flat"},
            },
            "resource",
        ),
    ],
)
def test_evaluate_refuses_bad_input_naming_the_field(admin_client, body, field):
    assert_error(
        admin_client.post("/api/v1/policies/evaluate", body, format="json"), 400, field=field
    )


def test_policies_cannot_name_the_policy_management_permission(admin_client):
    text = 'forbid (principal, action == Lumina::Action::"security.policies.manage", resource);'

    error = assert_error(create(admin_client, text=text), 400, "invalid", "policy")

    assert "decided by roles alone" in error["fields"]["policy"][0]
