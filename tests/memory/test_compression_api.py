"""``/api/v1/compression``: compress and expand over REST, bad input, and who may do what."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from lumina.memory.models.compression import CompressedSegment
from lumina.providers import api as providers
from tests.memory.conftest import client_as
from tests.memory.test_compression_service import conversation

pytestmark = pytest.mark.django_db

COMPRESS = "/api/v1/compression/compress"


def expand_url(segment_id) -> str:
    return f"/api/v1/compression/segments/{segment_id}/expand"


def _error_fields(response) -> set[str]:
    return set(response.json()["error"]["fields"])


def test_compress_and_expand_over_rest(developer_client):
    messages = conversation(50)
    budget = providers.count_message_tokens(messages) // 4
    response = developer_client.post(
        COMPRESS, {"messages": messages, "budget": budget, "session": "trip"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["tokens_before"] == providers.count_message_tokens(messages)
    assert body["tokens_after"] <= budget
    assert body["tokens_after"] == providers.count_message_tokens(body["messages"])
    assert body["messages"][0] == messages[0]
    assert body["messages"][-1] == messages[-1]
    assert body["segments"]
    segment = body["segments"][0]
    expanded = developer_client.get(expand_url(segment["id"]))
    assert expanded.status_code == 200
    assert expanded.json()["turns"] == messages[segment["first_index"] : segment["last_index"] + 1]
    assert expanded.json()["session"] == "trip"
    shallow = developer_client.get(expand_url(segment["id"]) + "?recursive=false")
    assert shallow.status_code == 200


def test_budget_smaller_than_the_system_prompt_is_a_400_naming_budget(developer_client):
    messages = [
        {"role": "system", "content": "You are a meticulous assistant. " * 20},
        {"role": "user", "content": "hello"},
    ]
    response = developer_client.post(COMPRESS, {"messages": messages, "budget": 30}, format="json")
    assert response.status_code == 400
    assert _error_fields(response) == {"budget"}
    assert "system prompt" in response.json()["error"]["message"]
    assert CompressedSegment.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"budget": 100}, "messages"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "budget"),
        ({"messages": [{"role": "user", "content": "hi"}], "budget": 0}, "budget"),
        ({"messages": [{"role": "user", "content": "hi"}], "budget": "lots"}, "budget"),
        ({"messages": [{"role": "user", "content": "hi"}], "budget": 10**9}, "budget"),
        ({"messages": "hi", "budget": 100}, "messages"),
        ({"messages": [{"role": "root", "content": "hi"}], "budget": 100}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": {}}], "budget": 100}, "messages[0].content"),
        (
            {"messages": [{"role": "user", "content": "hi"}], "budget": 100, "summary": "x"},
            "summary",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}], "budget": 100, "pinned": "x"},
            "pinned",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}], "budget": 100, "keep_recent": -1},
            "keep_recent",
        ),
    ],
)
def test_bad_input_is_a_400_naming_the_field(developer_client, body, field):
    response = developer_client.post(COMPRESS, body, format="json")
    assert response.status_code == 400, response.content
    assert _error_fields(response) == {field}


def test_malformed_json_is_a_400(developer_client):
    response = developer_client.generic(
        "POST", COMPRESS, data="{not json", content_type="application/json"
    )
    assert response.status_code == 400


def test_expand_with_a_bad_recursive_flag_is_a_400(developer_client, developer):
    segment = CompressedSegment.objects.create(
        owner_id=developer.pk, turns=[], first_index=0, last_index=0, method="none"
    )
    response = developer_client.get(expand_url(segment.id) + "?recursive=perhaps")
    assert response.status_code == 400
    assert _error_fields(response) == {"recursive"}


@pytest.fixture
def segment_of_developer(people):
    response = client_as(people.developer).post(
        COMPRESS, {"messages": conversation(40), "budget": 250}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()["segments"][0]["id"]


def test_who_may_compress(people):
    body = {"messages": conversation(20), "budget": 200}
    assert APIClient().post(COMPRESS, body, format="json").status_code in (401, 403)
    for user in (people.nobody, people.staff, people.viewer):
        response = client_as(user).post(COMPRESS, body, format="json")
        assert response.status_code == 403, user
    for user in (people.developer, people.admin):
        assert client_as(user).post(COMPRESS, body, format="json").status_code == 200


def test_nobody_reads_another_users_segment_but_a_manager(people, segment_of_developer):
    url = expand_url(segment_of_developer)
    assert APIClient().get(url).status_code in (401, 403)
    for user in (people.nobody, people.staff):
        assert client_as(user).get(url).status_code == 403
    for user in (people.viewer, people.other_developer):
        response = client_as(user).get(url)
        assert response.status_code == 404
        # Nothing of the segment leaks in the refusal.
        assert "turn" not in response.content.decode().lower()
    assert client_as(people.developer).get(url).status_code == 200
    assert client_as(people.admin).get(url).status_code == 200  # memory.manage


def test_an_unknown_segment_is_the_same_404_as_someone_elses(people, segment_of_developer):
    other = client_as(people.other_developer)
    unknown = other.get(expand_url(uuid.uuid4())).json()["error"]
    theirs = other.get(expand_url(segment_of_developer)).json()["error"]
    assert unknown["code"] == theirs["code"] == "segment_not_found"
    assert unknown.keys() == theirs.keys()
