"""Documents over REST: create, list, read, rename, delete; sharing; bad input named."""

from __future__ import annotations

import uuid

import pytest

from lumina.kernel.models import OutboxEvent
from lumina.ui.models import Document
from tests.security.rbac_support import assert_error
from tests.ui.documents.conftest import DOCUMENTS, client_as, make_document

pytestmark = pytest.mark.django_db


def test_a_developer_creates_reads_renames_and_deletes_their_document(people):
    client = client_as(people.developer)

    created = client.post(DOCUMENTS, {"title": "  Plan  "}, format="json")

    assert created.status_code == 201, created.content
    body = created.json()
    assert body["title"] == "Plan"
    assert body["owner_id"] == str(people.developer.pk)
    assert body["permissions"] == [
        "documents.read", "documents.comment", "documents.edit", "documents.share",
    ]  # fmt: skip
    url = f"{DOCUMENTS}/{body['id']}"
    assert client.get(url).json()["title"] == "Plan"
    renamed = client.patch(url, {"title": "Plan B"}, format="json")
    assert renamed.status_code == 200
    assert renamed.json()["title"] == "Plan B"
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404
    assert Document.objects.get(id=body["id"]).deleted_at is not None
    names = set(OutboxEvent.objects.values_list("name", flat=True))
    assert {"ui.DocumentCreated", "ui.DocumentRenamed", "ui.DocumentDeleted"} <= names


def test_creating_a_document_needs_a_role_that_writes_documents(people):
    for user in (people.nobody, people.viewer, people.staff):
        response = client_as(user).post(DOCUMENTS, {"title": "Mine"}, format="json")
        assert_error(response, 403, "permission_denied")
    assert not Document.objects.exists()


def test_the_list_holds_your_own_and_those_shared_with_you_and_nobody_elses(people):
    mine = make_document(people.developer, "mine")
    shared = make_document(people.other_developer, "shared with me")
    make_document(people.other_developer, "not shared")
    owner_client = client_as(people.other_developer)
    assert (
        owner_client.post(
            f"{DOCUMENTS}/{shared.id}/shares",
            {"principal": people.developer.email, "permission": "comment"},
            format="json",
        ).status_code
        == 200
    )

    page = client_as(people.developer).get(DOCUMENTS).json()

    assert {row["title"] for row in page["results"]} == {"mine", "shared with me"}
    by_title = {row["title"]: row for row in page["results"]}
    assert by_title["shared with me"]["permissions"] == ["documents.read", "documents.comment"]
    assert str(mine.id) in {row["id"] for row in page["results"]}
    assert page["count"] == 2


def test_listing_someone_elses_documents_needs_documents_manage(people):
    make_document(people.developer, "theirs")
    for user in (people.nobody, people.viewer, people.other_developer, people.admin):
        response = client_as(user).get(DOCUMENTS, {"owner_id": str(people.developer.pk)})
        assert_error(response, 403, field="owner_id")
    listed = client_as(people.owner).get(DOCUMENTS, {"owner_id": str(people.developer.pk)})
    assert [row["title"] for row in listed.json()["results"]] == ["theirs"]


def test_shares_give_exactly_their_permission(people):
    document = make_document(people.developer)
    owner = client_as(people.developer)
    url = f"{DOCUMENTS}/{document.id}"

    shared = owner.post(
        f"{url}/shares", {"principal": str(people.viewer.pk), "permission": "edit"}, format="json"
    )

    assert shared.status_code == 200, shared.content
    assert shared.json() == {
        "principal_type": "user",
        "principal_id": str(people.viewer.pk),
        "principal_label": people.viewer.email,
        "permission": "edit",
        "can_share": False,
    }
    viewer = client_as(people.viewer)
    # A share opens the document to a Viewer (no role writes documents) …
    assert viewer.patch(url, {"title": "By the viewer"}, format="json").status_code == 200
    # … but not sharing it on.
    refused = viewer.post(
        f"{url}/shares", {"principal": people.nobody.email, "permission": "view"}, format="json"
    )
    assert_error(refused, 403)
    # Lowered to view: a Developer's role-wide documents.edit does not count on it either.
    owner.post(
        f"{url}/shares", {"principal": people.other_developer.email, "permission": "view"},
        format="json",
    )  # fmt: skip
    other = client_as(people.other_developer)
    assert other.get(url).status_code == 200
    assert_error(other.patch(url, {"title": "x"}, format="json"), 403)
    assert_error(other.post(f"{url}/versions", {"name": "v"}, format="json"), 403)
    # Taken back: gone from their sight.
    assert owner.delete(f"{url}/shares/users/{people.other_developer.pk}").status_code == 204
    assert other.get(url).status_code == 404
    listed = owner.get(f"{url}/shares").json()
    assert [(s["principal_id"], s["permission"]) for s in listed] == [
        (str(people.viewer.pk), "edit")
    ]


def test_a_sharer_cannot_grant_more_than_they_hold(people):
    document = make_document(people.developer)
    client_as(people.developer).post(
        f"{DOCUMENTS}/{document.id}/shares",
        {"principal": people.viewer.email, "permission": "comment", "can_share": True},
        format="json",
    )
    viewer = client_as(people.viewer)
    url = f"{DOCUMENTS}/{document.id}/shares"

    refused = viewer.post(
        url, {"principal": people.nobody.email, "permission": "edit"}, format="json"
    )
    allowed = viewer.post(
        url, {"principal": people.nobody.email, "permission": "view"}, format="json"
    )

    assert_error(refused, 403, "permission_denied")
    # The refusal is in the audit trail although the share's transaction never ran.
    denied = OutboxEvent.objects.filter(name="security.AccessDenied")
    assert any("documents.edit" in event.payload["reason"] for event in denied)
    assert allowed.status_code == 200
    assert client_as(people.nobody).get(f"{DOCUMENTS}/{document.id}").status_code == 200
    # Someone who may share may still not take away what they do not hold (edit of another).
    client_as(people.developer).post(
        url, {"principal": people.other_developer.email, "permission": "edit"}, format="json"
    )
    taken = viewer.delete(f"{url}/users/{people.other_developer.pk}")
    assert_error(taken, 403)


def test_a_share_through_a_group_opens_the_document_to_its_members(people):
    from django.contrib.auth.models import Group

    group = Group.objects.create(name="writers")
    people.nobody.groups.add(group)
    document = make_document(people.developer)

    response = client_as(people.developer).post(
        f"{DOCUMENTS}/{document.id}/shares",
        {"principal": "group:writers", "permission": "view"},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["principal_type"] == "group"
    member = client_as(people.nobody)
    assert member.get(f"{DOCUMENTS}/{document.id}").status_code == 200
    assert [row["id"] for row in member.get(DOCUMENTS).json()["results"]] == [str(document.id)]
    gone = client_as(people.developer).delete(f"{DOCUMENTS}/{document.id}/shares/groups/writers")
    assert gone.status_code == 204
    assert member.get(f"{DOCUMENTS}/{document.id}").status_code == 404


def test_deleting_a_document_takes_back_its_shares_and_only_the_owner_may(people):
    document = make_document(people.developer)
    owner = client_as(people.developer)
    owner.post(
        f"{DOCUMENTS}/{document.id}/shares",
        {"principal": people.viewer.email, "permission": "edit", "can_share": True},
        format="json",
    )
    assert_error(client_as(people.viewer).delete(f"{DOCUMENTS}/{document.id}"), 403)

    assert owner.delete(f"{DOCUMENTS}/{document.id}").status_code == 204

    assert client_as(people.viewer).get(DOCUMENTS).json()["count"] == 0
    from lumina.security.api import object_grants

    assert object_grants(resource_type="ui.document", resource_id=str(document.id)) == ()


# --- Bad input: 400 naming the field -----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": 12}, "title"),
        ({"title": ["a"]}, "title"),
        ({"title": "ok", "owner_id": "not-a-uuid"}, "owner_id"),
        ({"title": "a\x00b"}, "title"),
    ],
)
def test_creating_with_bad_input_is_a_400_naming_the_field(people, body, field):
    response = client_as(people.developer).post(DOCUMENTS, body, format="json")
    assert_error(response, 400, field=field)
    assert not Document.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"permission": "view"}, "principal"),
        ({"principal": "nobody@nowhere.example", "permission": "view"}, "principal"),
        ({"principal": "group:no such group", "permission": "view"}, "principal"),
        ({"principal": "x", "permission": "owner"}, "permission"),
        ({"principal": "x", "permission": "view", "can_share": "perhaps"}, "can_share"),
        ({"principal": "x"}, "permission"),
    ],
)
def test_sharing_with_bad_input_is_a_400_naming_the_field(people, body, field):
    document = make_document(people.developer)
    response = client_as(people.developer).post(
        f"{DOCUMENTS}/{document.id}/shares", body, format="json"
    )
    assert_error(response, 400, field=field)


def test_creating_for_someone_else_needs_manage_and_an_existing_user(people):
    body = {"title": "For you", "owner_id": str(people.viewer.pk)}
    assert_error(client_as(people.developer).post(DOCUMENTS, body, format="json"), 403)
    created = client_as(people.owner).post(DOCUMENTS, body, format="json")
    assert created.status_code == 201
    assert created.json()["owner_id"] == str(people.viewer.pk)
    ghost = {"title": "x", "owner_id": str(uuid.uuid4())}
    refused = client_as(people.owner).post(DOCUMENTS, ghost, format="json")
    assert_error(refused, 400, field="owner_id")


def test_sharing_with_the_owner_is_a_400(people):
    document = make_document(people.developer)
    response = client_as(people.developer).post(
        f"{DOCUMENTS}/{document.id}/shares",
        {"principal": people.developer.email, "permission": "view"},
        format="json",
    )
    assert_error(response, 400, field="principal")


def test_other_bad_input_is_named(people):
    document = make_document(people.developer)
    client = client_as(people.developer)
    url = f"{DOCUMENTS}/{document.id}"
    assert_error(client.patch(url, {"title": ""}, format="json"), 400, field="title")
    assert_error(client.post(f"{url}/versions", {"name": ""}, format="json"), 400, field="name")
    assert_error(client.get(f"{url}/export", {"format": "pdf"}), 400, field="format")
    assert_error(client.get(DOCUMENTS, {"owner_id": "nope"}), 400, field="owner_id")
    assert_error(client.get(DOCUMENTS, {"page": "0"}), 400, field="page")
    assert_error(
        client.post(f"{url}/versions/{uuid.uuid4()}/restore", format="json"), 404, field="version"
    )
    assert_error(client.delete(f"{url}/shares/users/{uuid.uuid4()}"), 404, field="principal")
    assert client.get(f"{DOCUMENTS}/{uuid.uuid4()}").status_code == 404


def test_a_token_without_the_scope_cannot_list_or_edit(people):
    from lumina.security.services.tokens import token_create
    from lumina.security.types import Actor

    document = make_document(people.developer)
    secret = token_create(
        user_id=people.developer.pk, actor=Actor.system("tests"), scopes=["documents.read"]
    ).secret
    client = client_as(None)
    client.force_authenticate(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")

    assert client.get(DOCUMENTS).json()["count"] == 1
    assert_error(client.patch(f"{DOCUMENTS}/{document.id}", {"title": "x"}, format="json"), 403)
