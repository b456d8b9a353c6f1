"""``POST /api/v1/memory/search``: hybrid, vector, text and graph modes; time-aware;
filters; ``as_of``; every hit explained; nothing of another user's leaks."""

from __future__ import annotations

import datetime as dt

import pytest
from rest_framework.test import APIClient

from lumina.memory.models.records import Layer, MemoryAccess, MemoryRecord
from lumina.memory.services.expiry import records_expire_due
from lumina.memory.services.imports import records_import
from tests.memory.conftest import actor_as, client_as
from tests.memory.records_support import history_json, history_jsonl

pytestmark = pytest.mark.django_db

URL = "/api/v1/memory/search"
NOW = "2024-09-01T00:00:00Z"


@pytest.fixture
def history(people):
    records_import(actor=actor_as(people.developer), text=history_json(), fmt="json")
    return people.developer


def search(client, **body):
    body.setdefault("now", NOW)
    return client.post(URL, body, format="json")


def texts(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [hit["record"]["text"] for hit in response.json()["hits"]]


@pytest.mark.parametrize("mode", ["hybrid", "vector", "text", "graph"])
def test_each_mode_finds_the_turn_that_answers(history, mode):
    response = search(client_as(history), query="pottery teacher", mode=mode, k=3)
    found = texts(response)
    assert any("pottery classes" in text for text in found), found
    assert response.json()["mode"] == mode


def test_every_hit_explains_itself(history):
    response = search(client_as(history), query="Where did Sam go hiking?", k=5)
    [top, *_] = response.json()["hits"]
    assert "Sintra" in top["record"]["text"]
    assert top["layer"] == "working"
    scores = top["scores"]
    assert {"vector", "vector_rank", "text", "text_rank", "relevance", "recency",
            "importance"} <= set(scores)  # fmt: skip
    assert top["score"] == pytest.approx(
        scores["relevance"]
        * scores["recency"]
        * scores["importance"]
        * scores["time"]
        * scores["validity"],
        rel=1e-3,
    )
    assert any("close in meaning" in why for why in top["why"])
    assert any("shares words" in why for why in top["why"])
    assert any("said by Sam" in why for why in top["why"])
    assert top["record"]["metadata"] == {}
    assert top["record"]["occurred_at"].startswith("2023-03-10")


def test_a_question_about_a_period_prefers_what_was_said_then(history):
    client = client_as(history)
    # "summer" words exist in 2024; the question asks about spring 2023.
    spring = search(client, query="What did Sam do in spring 2023?", k=3).json()
    assert spring["time_windows"][0]["start"].startswith("2023-03-01")
    top = spring["hits"][0]
    assert top["record"]["occurred_at"][:7] in ("2023-03", "2023-04", "2023-05")
    assert any("period asked about" in why for why in top["why"])

    summer = search(client, query="What did we do last summer?", k=3).json()
    assert summer["time_windows"][0]["phrase"] == "last summer"
    assert summer["hits"][0]["record"]["occurred_at"].startswith("2024-07")


def test_a_question_naming_a_speaker_prefers_what_they_said(people):
    """The speaker is part of what was said: their turn outranks the same words said by
    someone else (here the newer), and a turn matching only the speaker is no text hit."""
    import json

    turns = [
        ("Caroline", "I spent the weekend researching adoption agencies.", "2023-05-07"),
        ("Melanie", "I spent the weekend researching pottery kilns.", "2023-06-11"),
        ("Caroline", "Thanks, see you soon!", "2023-06-12"),
    ]
    sessions = [
        {
            "session_id": f"s{index}",
            "turns": [{"speaker": speaker, "text": text, "occurred_at": f"{day}T12:00:00Z"}],
        }
        for index, (speaker, text, day) in enumerate(turns)
    ]
    records_import(
        actor=actor_as(people.developer), text=json.dumps({"sessions": sessions}), fmt="json"
    )
    client = client_as(people.developer)
    found = texts(search(client, query="What did Caroline research?", mode="text", k=10))
    assert found[0] == "I spent the weekend researching adoption agencies."
    assert "I spent the weekend researching pottery kilns." in found
    assert "Thanks, see you soon!" not in found
    hybrid = texts(search(client, query="What did Caroline research?", k=3))
    assert hybrid[0] == "I spent the weekend researching adoption agencies."


def test_before_the_move_means_before_the_turn_that_mentions_it(history):
    response = search(client_as(history), query="Where did Sam live before the move?", k=5)
    body = response.json()
    [window] = body["time_windows"]
    assert window["kind"] == "before"
    assert window["anchor"] == "move"
    assert window["end"].startswith("2023-11-05")
    top = body["hits"][0]["record"]
    assert "Lisbon" in top["text"]


def test_an_anchor_said_alike_several_times_means_the_first(people):
    # Equally good matches of "truck": the period ends where it first came up, whichever
    # record the database happens to hold first.
    import json

    turns = [
        {"speaker": "Tom", "text": "The truck.", "occurred_at": f"2024-{month:02d}-10T12:00:00Z"}
        for month in (5, 2, 8)
    ]
    sessions = [{"session_id": f"s{i}", "turns": [turn]} for i, turn in enumerate(turns)]
    records_import(
        actor=actor_as(people.developer), text=json.dumps({"sessions": sessions}), fmt="json"
    )
    body = search(client_as(people.developer), query="What did Tom do before the truck?").json()
    [window] = body["time_windows"]
    assert window["anchor"] == "truck"
    assert window["end"].startswith("2024-02-10")


def test_facts_and_their_history_answer_as_of(history):
    client = client_as(history)
    now = search(client, query="Where does Sam live?", layers=["semantic"], k=3).json()
    first = now["hits"][0]
    assert first["record"]["text"] == "Sam lives in Berlin"
    assert any("a fact, true since 2023-11-05" in why for why in first["why"])
    lisbon = next(h for h in now["hits"] if "Lisbon" in h["record"]["text"])
    assert lisbon["record"]["valid_to"].startswith("2023-11-05")
    assert lisbon["scores"]["validity"] < 1  # no longer true: counts less
    # Valid time: what held in mid-2023.
    then = search(
        client, query="Where does Sam live?", layers=["semantic"], valid_at="2023-06-01T00:00:00Z"
    )
    assert [t for t in texts(then) if "lives" in t] == ["Sam lives in Lisbon"]


def test_filters_on_metadata_and_time_range(people):
    records_import(actor=actor_as(people.developer), text=history_jsonl(), fmt="jsonl")
    client = client_as(people.developer)
    found = search(client, query="dog", filter={"topic": "life"}, k=20)
    assert texts(found)
    assert all(hit["record"]["metadata"]["topic"] == "life" for hit in found.json()["hits"])
    ranged = search(
        client,
        query="anything at all",
        occurred_after="2024-01-01T00:00:00Z",
        occurred_before="2025-01-01T00:00:00Z",
        k=20,
    )
    assert ranged.json()["hits"]
    assert all(hit["record"]["occurred_at"].startswith("2024") for hit in ranged.json()["hits"])


def test_a_filter_on_a_field_no_record_has_is_a_400_naming_it(history):
    response = search(client_as(history), query="dog", filter={"colour": "red"})
    assert response.status_code == 400
    assert any("colour" in " ".join(v) or "colour" in k
               for k, v in response.json()["error"]["fields"].items())  # fmt: skip


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "x", "k": 0}, "k"),
        ({"query": "x", "k": 101}, "k"),
        ({"query": "x", "mode": "psychic"}, "mode"),
        ({"query": "x", "layers": ["dreams"]}, "layers"),
        ({"query": "x", "weights": {"vector": -1}}, "weights"),
        ({"query": "x", "weights": {"gut": 1}}, "weights"),
        ({"query": "x", "as_of": "yesterday-ish"}, "as_of"),
        ({"query": "x", "filter": {"$or": "nope"}}, "metadata"),
        ({"query": "x", "occurred_after": "2024-01-01T00:00:00Z",
          "occurred_before": "2023-01-01T00:00:00Z"}, "occurred_after"),
        ({"k": 3}, "query"),
        ({"query": "a\u0000b"}, "query"),
        ({"query": "x", "filter": {"topic": "a\u0000"}}, "metadata"),
    ],
)  # fmt: skip
def test_bad_search_input_is_a_400_naming_the_field(history, body, field):
    response = client_as(history).post(URL, body, format="json")
    assert response.status_code == 400, response.content
    fields = response.json()["error"]["fields"]
    assert any(name.startswith(field) for name in fields), fields


@pytest.mark.parametrize("now", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"])
def test_a_reference_time_at_the_calendars_edge_still_answers(history, now):
    response = search(client_as(history), query="what did I do last spring in 2023?", now=now)
    assert response.status_code == 200, response.content


def test_expired_memories_leave_search_but_stay_until_purged(history):
    client = client_as(history)
    assert any("Pixel" in t for t in texts(search(client, query="Pixel the dog")))
    before_expiry = dt.datetime.now(dt.UTC).isoformat()
    MemoryRecord.objects.filter(owner_id=history.pk, text__contains="Pixel").update(
        expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    )
    assert records_expire_due() >= 2
    assert not any("Pixel" in t for t in texts(search(client, query="Pixel the dog")))
    assert MemoryRecord.objects.filter(owner_id=history.pk, text__contains="Pixel").exists()
    # What was believed before it expired still answers as_of.
    old = search(client, query="Pixel the dog", as_of=before_expiry)
    assert any("Pixel" in t for t in texts(old))


def test_search_counts_accesses(history):
    client = client_as(history)
    top = search(client, query="Sintra hiking", k=1).json()["hits"][0]["record"]
    access = MemoryAccess.objects.get(record_id=top["id"])
    assert access.count == 1
    again = search(client, query="Sintra hiking", k=1).json()["hits"][0]["record"]
    assert again["id"] == top["id"]
    assert again["access_count"] == 1  # as it stood when found
    assert MemoryAccess.objects.get(record_id=top["id"]).count == 2


def test_another_users_memories_are_refused_and_never_leak(history, people):
    stranger = client_as(people.other_developer)
    mine = search(stranger, query="Where does Sam live?", k=10)
    assert mine.status_code == 200
    assert mine.json()["hits"] == []
    refused = search(stranger, query="Where does Sam live?", user_id=str(history.pk))
    assert refused.status_code == 403
    assert "Lisbon" not in refused.content.decode()
    assert "Sam" not in refused.content.decode()
    managed = search(client_as(people.admin), query="Where does Sam live?", user_id=str(history.pk))
    assert any("Berlin" in t for t in texts(managed))


@pytest.mark.parametrize(
    ("who", "status"), [("nobody", 403), ("staff", 403), ("viewer", 200), ("developer", 200)]
)
def test_search_needs_memory_read(people, who, status):
    response = search(client_as(getattr(people, who)), query="anything")
    assert response.status_code == status


def test_search_refuses_anonymous_callers():
    assert APIClient().post(URL, {"query": "x"}, format="json").status_code in (401, 403)


def test_a_staff_viewer_cannot_read_another_users_memories(history, people):
    response = search(client_as(people.viewer), query="Sam", user_id=str(history.pk))
    assert response.status_code == 403
    assert MemoryRecord.objects.filter(owner_id=history.pk, layer=Layer.WORKING).exists()


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_scan_settings_stay_on_the_session(people):
    from django.db import connection

    records_import(actor=actor_as(people.developer), text=history_json(), fmt="json")
    client = client_as(people.developer)
    assert texts(search(client, query="pottery teacher", ef_search=120))
    with connection.cursor() as cursor:
        cursor.execute("SHOW hnsw.iterative_scan")
        assert cursor.fetchone()[0] == "relaxed_order"
        cursor.execute("SHOW hnsw.ef_search")
        assert cursor.fetchone()[0] == "120"
    # A search asking for another ef_search sets it again.
    assert texts(search(client, query="pottery teacher", ef_search=200))
    with connection.cursor() as cursor:
        cursor.execute("SHOW hnsw.ef_search")
        assert cursor.fetchone()[0] == "200"


@pytest.mark.django_db(transaction=True)
def test_a_search_is_a_bounded_number_of_statements_and_leaves_durability_alone(people):
    """Text and vector retrievers (each reading what scoring needs of its candidates),
    then the k hits read whole with their access counted: three statements, however many
    candidates; the count commits without waiting for the disk, and the session's own
    commits still wait."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    records_import(actor=actor_as(people.developer), text=history_json(), fmt="json")
    client = client_as(people.developer)
    assert texts(search(client, query="pottery teacher"))
    with CaptureQueriesContext(connection) as captured:
        found = texts(search(client, query="Where did Sam go hiking?", k=10))
    assert len(found) == 10
    memory_statements = [q["sql"] for q in captured.captured_queries if "memory_" in q["sql"]]
    assert len(memory_statements) <= 3, memory_statements
    assert any("synchronous_commit = off" in sql for sql in memory_statements)
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"


def test_a_fact_hit_names_how_many_turns_it_came_from(history):
    response = search(client_as(history), query="Where does Sam live?", layers=["semantic"])
    hits = response.json()["hits"]
    assert hits
    for hit in hits:
        count = len(hit["record"]["provenance"])
        assert (f"from {count} turn(s)" in hit["why"]) == (count > 0), hit["why"]


@pytest.mark.parametrize(
    "options",
    [
        {"query": "Where does Sam live?"},
        {"query": "What did Sam do last spring?", "mode": "graph"},
        {"query": "Where did Sam live before the move?"},
        {"query": "Where does Sam live?", "as_of": dt.datetime(2100, 1, 1, tzinfo=dt.UTC)},
        {"query": "pottery", "layers": ["semantic"]},
    ],
)
def test_the_answer_built_directly_is_what_the_documented_serializer_gives(history, options):
    """The search and listing answers skip DRF's field walk; the serializers that document
    them (OpenAPI) must still describe exactly what is sent."""
    from lumina.memory import api as memory
    from lumina.memory.http.records import RecordOutput, SearchOutput, record_data, search_data

    actor = actor_as(history)
    options = {"now": dt.datetime(2024, 9, 1, tzinfo=dt.UTC), "k": 10, **options}
    MemoryAccess.objects.all().delete()
    # Some hits now have an access count (a search as_of a date counts none).
    memory.memory_search(actor=actor, **{**options, "as_of": None})
    result = memory.memory_search(actor=actor, **options)
    assert result.hits
    assert any(hit.record.access_count for hit in result.hits)
    assert search_data(result) == SearchOutput(result).data
    for record in memory.memory_list(actor=actor, include_superseded=True):
        assert record_data(record) == RecordOutput(record).data
