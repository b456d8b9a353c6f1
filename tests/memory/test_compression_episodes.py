"""Episodic memory: session summaries with provenance, recursive for long sessions."""

from __future__ import annotations

import datetime as dt

import pytest

from lumina.kernel.errors import PermissionDeniedError
from lumina.memory import api as memory
from lumina.memory.errors import InvalidInputError
from lumina.memory.models.records import Layer, MemoryRecord
from tests.memory.conftest import actor_as

pytestmark = pytest.mark.django_db

START = dt.datetime(2024, 3, 9, 20, 0, tzinfo=dt.UTC)
LINES = [
    "I adopted a retired greyhound called Juniper yesterday.",
    "She raced in Limerick until last year and she is four.",
    "We booked Ballymaloe House for the wedding on the 14th of September.",
    "I signed up for the Dublin Marathon in October, my first one.",
    "The sailing club in Renville runs lessons on Wednesday evenings.",
    "Dr. Brennan cleaned Juniper's teeth and took out three of them.",
]


def record_session(actor, session: str, turns: int, *, offset: int = 0) -> list:
    ids = []
    for n in range(offset, offset + turns):
        result = memory.turn_record(
            actor=actor,
            text=f"{LINES[n % len(LINES)]} (turn {n})",
            speaker="Grace" if n % 2 == 0 else "Oliver",
            session_id=session,
            occurred_at=START + dt.timedelta(minutes=n),
        )
        ids.append(result.record.id)
    return ids


def test_a_short_session_gets_one_summary_with_its_turns_as_provenance(developer_actor):
    ids = record_session(developer_actor, "s1", 8)
    summary = memory.session_summarize(actor=developer_actor, session_id="s1")
    assert summary.layer == Layer.EPISODIC
    assert summary.session_id == "s1"
    assert set(summary.provenance) == set(ids)
    assert summary.text.startswith("Summary of session s1, 2024-03-09:")
    assert "Juniper" in summary.text
    assert summary.occurred_at == START + dt.timedelta(minutes=7)
    assert summary.embedded
    # Asked again with nothing new: the same summary.
    again = memory.session_summarize(actor=developer_actor, session_id="s1")
    assert again.id == summary.id
    assert MemoryRecord.objects.filter(layer=Layer.EPISODIC).count() == 1


def test_a_long_session_is_summarised_recursively_and_resummarised_without_deleting(
    developer_actor,
):
    ids = record_session(developer_actor, "long", 60)
    top = memory.session_summarize(actor=developer_actor, session_id="long")
    assert top.metadata["kind"] == "session"
    assert set(top.provenance) == set(ids)
    children = MemoryRecord.objects.filter(id__in=top.metadata["children"])
    assert children.count() == 3  # 24 + 24 + 12 turns
    assert all(c.metadata["kind"] == "stretch" for c in children)
    covered = [p for c in children for p in c.provenance]
    assert sorted(covered) == sorted(ids)

    more = record_session(developer_actor, "long", 6, offset=60)
    newer = memory.session_summarize(actor=developer_actor, session_id="long")
    assert newer.id != top.id
    assert set(newer.provenance) == set(ids + more)
    old = MemoryRecord.objects.get(id=top.id)
    assert old.superseded_at is not None
    assert old.superseded_by_id == newer.id
    # The two full stretches are kept; the grown last one is replaced.
    kept = set(map(str, top.metadata["children"][:2]))
    assert kept <= set(newer.metadata["children"])
    assert MemoryRecord.objects.filter(id__in=top.metadata["children"]).count() == 3


def test_summaries_are_found_by_search(developer_actor):
    record_session(developer_actor, "s1", 12)
    summary = memory.session_summarize(actor=developer_actor, session_id="s1")
    result = memory.memory_search(
        actor=developer_actor, query="greyhound Juniper", k=20, mode="hybrid"
    )
    assert summary.id in {hit.record.id for hit in result.hits}


def test_bad_input_and_other_peoples_sessions(people):
    owner = actor_as(people.developer)
    record_session(owner, "mine", 4)
    with pytest.raises(InvalidInputError) as caught:
        memory.session_summarize(actor=owner, session_id="")
    assert caught.value.field == "session_id"
    with pytest.raises(InvalidInputError) as caught:
        memory.session_summarize(actor=owner, session_id="nothing-here")
    assert caught.value.field == "session_id"
    with pytest.raises(InvalidInputError) as caught:
        memory.session_summarize(actor=owner, session_id="mine", summary="poem")
    assert caught.value.field == "summary"
    # Another developer's "mine" is their own, empty session: nothing of the owner's leaks.
    with pytest.raises(InvalidInputError):
        memory.session_summarize(actor=actor_as(people.other_developer), session_id="mine")
    with pytest.raises(PermissionDeniedError):
        memory.session_summarize(actor=actor_as(people.viewer), session_id="mine")
    with pytest.raises(PermissionDeniedError):
        memory.session_summarize(
            actor=actor_as(people.other_developer),
            session_id="mine",
            user_id=people.developer.pk,
        )
    # memory.manage may summarise anyone's.
    summary = memory.session_summarize(
        actor=actor_as(people.admin), session_id="mine", user_id=people.developer.pk
    )
    assert summary.owner_id == people.developer.pk


SUMMARIZE = "/api/v1/memory/sessions/summarize"


def test_summarize_over_rest_and_who_may(people):
    from rest_framework.test import APIClient

    from tests.memory.conftest import client_as

    record_session(actor_as(people.developer), "trip", 5)
    body = {"session_id": "trip"}
    assert APIClient().post(SUMMARIZE, body, format="json").status_code in (401, 403)
    for user in (people.nobody, people.staff, people.viewer):
        assert client_as(user).post(SUMMARIZE, body, format="json").status_code == 403
    response = client_as(people.developer).post(SUMMARIZE, body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["layer"] == "episodic"
    assert len(response.json()["provenance"]) == 5
    aimed = {"session_id": "trip", "user_id": str(people.developer.pk)}
    response = client_as(people.other_developer).post(SUMMARIZE, aimed, format="json")
    assert response.status_code == 403
    assert client_as(people.admin).post(SUMMARIZE, aimed, format="json").status_code == 200
    bad = client_as(people.developer).post(SUMMARIZE, {"session_id": ""}, format="json")
    assert bad.status_code == 400
    assert set(bad.json()["error"]["fields"]) == {"session_id"}
