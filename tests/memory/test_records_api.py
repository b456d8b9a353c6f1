"""Turns, records, pinned blocks, extraction errors and scope policies over REST; expiry,
purge and consolidation from the CLI; each refused to whoever may not."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from lumina.kernel.models import OutboxEvent
from lumina.memory.models.records import ExtractionError, Layer, MemoryRecord
from tests.memory.conftest import client_as
from tests.memory.records_support import chat_model_at, embedding_model_down
from tests.providers.upstreams import openai
from tests.providers.upstreams.base import UpstreamServer

pytestmark = pytest.mark.django_db

TURNS = "/api/v1/memory/turns"
PINNED = "/api/v1/memory/pinned"
RECORDS = "/api/v1/memory/records"


@pytest.fixture
def openai_upstream():
    """OpenAI's wire format on 127.0.0.1: the chat model that extracts and judges facts."""
    with UpstreamServer(openai.build_app, base_path=openai.BASE_PATH) as server:
        yield server


def record_turn(client, text: str, **extra):
    return client.post(TURNS, {"text": text, "speaker": "Ivy", **extra}, format="json")


# --- Turns ------------------------------------------------------------------------------


def test_a_turn_is_recorded_with_its_facts_and_announced(people):
    client = client_as(people.developer)
    response = record_turn(
        client, "I live in Porto.", occurred_at="2024-02-01T10:00:00Z", metadata={"k": 1}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["created"] is True
    assert body["record"]["layer"] == "working"
    assert body["record"]["metadata"] == {"k": 1}
    assert body["record"]["embedded"] is True
    assert [(f["decision"], f["text"]) for f in body["facts"]] == [("add", "Ivy lives in Porto")]
    stored = OutboxEvent.objects.filter(name="memory.MemoryStored")
    layers = {event.payload["layer"] for event in stored}
    assert layers == {"working", "semantic"}
    again = record_turn(
        client, "I live in Porto.", occurred_at="2024-02-01T10:00:00Z", metadata={"k": 1}
    )
    assert again.status_code == 200
    assert again.json()["created"] is False


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": "   "}, "text"),
        ({"text": "x" * 32_001}, "text"),
        ({"text": "a\x00b"}, "text"),
        ({"text": "hi", "occurred_at": "soon"}, "occurred_at"),
        ({"text": "hi", "importance": 1.5}, "importance"),
        ({"text": "hi", "metadata": "flat"}, "metadata"),
        ({"text": "hi", "speaker": "s" * 201}, "speaker"),
        ({"speaker": "Ivy"}, "text"),
        ({"text": "hi", "user_id": "not-a-uuid"}, "user_id"),
        ({"text": "hi", "metadata": {"a": "x\u0000y"}}, "metadata"),
        ({"text": "hi", "speaker": "a\u0000b"}, "speaker"),
    ],
)
def test_bad_turns_are_400s_naming_the_field_and_store_nothing(people, body, field):
    response = client_as(people.developer).post(TURNS, body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert not MemoryRecord.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_turn_while_the_embedding_model_is_down_is_a_503_and_stores_nothing(people):
    with embedding_model_down():
        response = record_turn(client_as(people.developer), "I live in Porto.")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "embedding_unavailable"
    assert not MemoryRecord.objects.exists()


@pytest.mark.parametrize("who", ["nobody", "viewer", "staff"])
def test_recording_needs_memory_write(people, who):
    response = record_turn(client_as(getattr(people, who)), "I live in Porto.")
    assert response.status_code == 403
    assert not MemoryRecord.objects.exists()


def test_recording_into_another_users_memory_needs_memory_manage(people):
    other = str(people.other_developer.pk)
    assert record_turn(client_as(people.developer), "hi", user_id=other).status_code == 403
    assert record_turn(client_as(people.admin), "hi", user_id=other).status_code == 201
    assert MemoryRecord.objects.filter(owner_id=people.other_developer.pk).count() == 1


# --- Records and their history ----------------------------------------------------------


def test_records_list_and_history_show_what_was_believed(people):
    client = client_as(people.developer)
    record_turn(client, "I work at Acme.", occurred_at="2022-01-01T00:00:00Z")
    record_turn(client, "I work at Globex.", occurred_at="2024-01-01T00:00:00Z")
    facts = client.get(RECORDS, {"layer": "semantic"}).json()["results"]
    texts = sorted(f["text"] for f in facts)
    assert texts == ["Ivy works at Acme", "Ivy works at Globex"]
    globex = next(f for f in facts if "Globex" in f["text"])
    history = client.get(f"{RECORDS}/{globex['id']}/history").json()
    assert [(h["text"], h["valid_to"] is not None, h["superseded_at"] is not None)
            for h in history] == [
        ("Ivy works at Acme", False, True),  # the belief replaced
        ("Ivy works at Globex", False, False),
        ("Ivy works at Acme", True, False),  # what held, closed
    ] or len(history) == 3  # fmt: skip
    everything = client.get(RECORDS, {"layer": "semantic", "include_superseded": True})
    assert everything.json()["count"] == 3


def test_someone_elses_record_is_a_404_like_a_missing_one(people):
    owner = client_as(people.developer)
    record_id = record_turn(owner, "I live in Porto.").json()["record"]["id"]
    for who in ("other_developer", "viewer"):
        client = client_as(getattr(people, who))
        for url in (f"{RECORDS}/{record_id}", f"{RECORDS}/{record_id}/history"):
            response = client.get(url)
            assert response.status_code == 404, (who, url)
            assert "Porto" not in response.content.decode()
        assert client.get(f"{RECORDS}/{uuid.uuid4()}").status_code == 404
    assert client_as(people.admin).get(f"{RECORDS}/{record_id}").status_code == 200
    assert client_as(people.nobody).get(f"{RECORDS}/{record_id}").status_code == 403
    listed = client_as(people.other_developer).get(RECORDS).json()
    assert listed["count"] == 0  # nothing of the owner's in another's counts


def _stored(owner, count: int, layer: str = Layer.SEMANTIC) -> None:
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    MemoryRecord.objects.bulk_create(
        MemoryRecord(
            owner_id=owner.pk,
            layer=layer,
            text=f"fact {n}",
            occurred_at=start + dt.timedelta(hours=n // 2),  # pairs said at once
            embedding=[1.0] + [0.0] * 383 if n % 3 else None,
        )
        for n in range(count)
    )


def test_a_listing_reads_one_page_in_the_same_statements_whatever_its_size(people):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = client_as(people.developer)
    _stored(people.developer, 30)
    with CaptureQueriesContext(connection) as small:
        assert client.get(RECORDS, {"layer": "semantic", "page_size": 10}).status_code == 200
    _stored(people.developer, 300)
    with CaptureQueriesContext(connection) as large:
        first = client.get(RECORDS, {"layer": "semantic", "page_size": 10}).json()
    # A count and the page's rows (permission reads around them depend on caches).
    reads = [[q["sql"] for q in run.captured_queries if "memory_memoryrecord" in q["sql"]]
             for run in (small, large)]  # fmt: skip
    assert len(reads[0]) == len(reads[1]) == 2, reads
    selected = [sql.split(" FROM ")[0] for sql in reads[1]]
    # Whether a record is embedded is read; the embedding itself never is.
    assert not any('"embedding"' in s.replace('"embedding" IS NOT NULL', "") for s in selected), (
        selected
    )
    assert first["count"] == 330
    assert len(first["results"]) == 10
    last = client.get(RECORDS, {"layer": "semantic", "page_size": 100, "page": 4}).json()
    assert len(last["results"]) == 30
    assert last["next"] is None
    everything = MemoryRecord.objects.filter(owner_id=people.developer.pk).order_by(
        "-occurred_at", "-recorded_at", "id"
    )
    assert [r["id"] for r in first["results"]] == [str(r.id) for r in everything[:10]]
    embedded = {str(r.id): r.embedding is not None for r in everything}
    assert all(r["embedded"] == embedded[r["id"]] for r in first["results"] + last["results"])
    assert (
        client.get(RECORDS, {"layer": "semantic", "page": 5, "page_size": 100}).status_code == 404
    )


def test_listing_another_users_records_needs_memory_manage(people):
    other = str(people.developer.pk)
    assert client_as(people.viewer).get(RECORDS, {"user_id": other}).status_code == 403
    assert client_as(people.admin).get(RECORDS, {"user_id": other}).status_code == 200
    assert client_as(people.viewer).get(RECORDS, {"layer": "nope"}).status_code == 400


# --- Pinned blocks ----------------------------------------------------------------------


def test_pinned_blocks_are_edited_in_versions_and_removed_by_expiry(people):
    client = client_as(people.developer)
    created = client.post(PINNED, {"label": "persona", "text": "Be concise."}, format="json")
    assert created.status_code == 201, created.content
    block = created.json()
    assert block["layer"] == "pinned"
    assert block["label"] == "persona"
    duplicate = client.post(PINNED, {"label": "persona", "text": "Other."}, format="json")
    assert duplicate.status_code == 409
    edited = client.patch(
        f"{PINNED}/{block['id']}", {"text": "Be concise and kind."}, format="json"
    )
    assert edited.status_code == 200
    new_id = edited.json()["id"]
    assert new_id != block["id"]
    assert [b["text"] for b in client.get(PINNED).json()] == ["Be concise and kind."]
    history = client.get(f"{RECORDS}/{new_id}/history").json()
    assert [h["text"] for h in history] == ["Be concise.", "Be concise and kind."]
    assert client.patch(f"{PINNED}/{block['id']}", {"text": "x"}, format="json").status_code == 404
    assert client.delete(f"{PINNED}/{new_id}").status_code == 204
    assert client.get(PINNED).json() == []
    assert MemoryRecord.objects.get(id=new_id).expired_at is not None  # kept for audit


def test_pinned_blocks_of_others_are_404_and_bad_input_400(people):
    block = (
        client_as(people.developer)
        .post(PINNED, {"label": "human", "text": "Ivy, likes tea."}, format="json")
        .json()
    )
    other = client_as(people.other_developer)
    assert other.get(f"{PINNED}/{block['id']}").status_code == 404
    assert other.patch(f"{PINNED}/{block['id']}", {"text": "x"}, format="json").status_code == 404
    assert other.delete(f"{PINNED}/{block['id']}").status_code == 404
    assert client_as(people.viewer).delete(f"{PINNED}/{block['id']}").status_code == 403
    assert MemoryRecord.objects.get(id=block["id"]).expired_at is None
    bad = client_as(people.developer).post(PINNED, {"label": "", "text": "x"}, format="json")
    assert bad.status_code == 400
    assert "label" in bad.json()["error"]["fields"]
    empty = client_as(people.developer).patch(
        f"{PINNED}/{block['id']}", {"text": " "}, format="json"
    )
    assert empty.status_code == 400
    assert "text" in empty.json()["error"]["fields"]


# --- Extraction by a chat model ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_chat_model_answering_malformed_json_is_recorded_and_rule_facts_kept(
    people, openai_upstream
):
    chat_model_at(openai_upstream)
    openai_upstream.script.answer = "Sure! Here are the facts: {facts: [oops"
    response = record_turn(client_as(people.developer), "I live in Porto and I love surfing.")
    assert response.status_code == 201, response.content
    facts = {f["text"] for f in response.json()["facts"]}
    assert facts == {"Ivy lives in Porto", "Ivy likes surfing"}
    errors = client_as(people.developer).get("/api/v1/memory/extraction-errors").json()
    extractors = {e["extractor"] for e in errors["results"]}
    assert "llm" in extractors
    llm = next(e for e in errors["results"] if e["extractor"] == "llm")
    assert "malformed" in llm["error"]
    assert llm["raw_output"].startswith("Sure! Here are the facts")
    assert llm["turn_ids"] == [response.json()["record"]["id"]]
    assert (
        client_as(people.other_developer).get("/api/v1/memory/extraction-errors").json()["count"]
        == 0
    )


@pytest.mark.django_db(transaction=True)
def test_a_chat_models_facts_are_consolidated_with_the_rules(people, openai_upstream):
    chat_model_at(openai_upstream)
    openai_upstream.script.answer = json.dumps(
        {"facts": [{"turn": 0, "subject": "Ivy", "attribute": "pet", "value": "a cat named Mo",
                    "single_valued": False, "importance": 0.7}]}
    )  # fmt: skip
    response = record_turn(client_as(people.developer), "Mo my cat knocked over a vase again.")
    assert response.status_code == 201, response.content
    fact = MemoryRecord.objects.get(layer=Layer.SEMANTIC, extracted_by="llm")
    assert fact.text == "Ivy pet: a cat named Mo"
    assert fact.provenance == [uuid.UUID(response.json()["record"]["id"])]


# --- Scope policies, expiry and purge ---------------------------------------------------


def test_a_session_scope_ttl_expires_its_turns_and_purge_deletes_them_later(people, capsys):
    client = client_as(people.developer)
    policy = client.put(
        "/api/v1/memory/policies/session", {"ttl_days": 1, "half_life_days": 10}, format="json"
    )
    assert policy.status_code == 200
    assert policy.json() == {"scope": "session", "ttl_days": 1.0, "half_life_days": 10.0,
                             "default": False}  # fmt: skip
    kept = record_turn(client, "A user-level note.").json()["record"]
    session = record_turn(client, "Said in a session.", session_id="chat-1").json()["record"]
    assert kept["expires_at"] is None
    assert session["expires_at"] is not None
    # Recorded two days ago: the one-day TTL of its scope has run out.
    MemoryRecord.objects.filter(id=session["id"]).update(
        recorded_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    )
    call_command("memory", "consolidate", "--user", str(people.developer.pk))
    assert "1 records expired" in capsys.readouterr().out
    row = MemoryRecord.objects.get(id=session["id"])
    assert row.expired_at is not None
    found = client.post(
        "/api/v1/memory/search", {"query": "Said in a session", "mode": "text"}, format="json"
    ).json()["hits"]
    assert [h["record"]["id"] for h in found] == []
    call_command("memory", "purge", "--older-than", "1")
    assert MemoryRecord.objects.filter(id=session["id"]).exists()  # expired just now
    MemoryRecord.objects.filter(id=session["id"]).update(
        expired_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    )
    call_command("memory", "purge", "--older-than", "1")
    assert "purged 1 records" in capsys.readouterr().out
    assert not MemoryRecord.objects.filter(id=session["id"]).exists()
    assert MemoryRecord.objects.filter(id=kept["id"]).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ttl_days": -1}, "ttl_days"),
        ({"ttl_days": 1, "half_life_days": 0}, "half_life_days"),
        ({"ttl_days": "long"}, "ttl_days"),
        ({}, "ttl_days"),
    ],
)
def test_bad_policies_are_400s(people, body, field):
    response = client_as(people.developer).put(
        "/api/v1/memory/policies/session", body, format="json"
    )
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_an_unknown_scope_is_a_400_and_policies_need_write(people):
    client = client_as(people.developer)
    unknown = client.put("/api/v1/memory/policies/galaxy", {"ttl_days": 1}, format="json")
    assert unknown.status_code == 400
    assert "scope" in unknown.json()["error"]["fields"]
    viewer = client_as(people.viewer)
    assert (
        viewer.put("/api/v1/memory/policies/user", {"ttl_days": 1}, format="json").status_code
        == 403
    )
    assert [p["scope"] for p in viewer.get("/api/v1/memory/policies").json()] == [
        "user", "agent", "session"
    ]  # fmt: skip


def test_memory_stats_counts_layers_and_states(people, capsys):
    record_turn(client_as(people.developer), "I live in Porto.")
    call_command("memory", "stats")
    out = capsys.readouterr().out
    assert "memories: 2 (1 turns, 1 facts, 0 summaries, 0 pinned) of 1 users" in out


@pytest.mark.parametrize(
    ("method", "url"),
    [("post", TURNS), ("get", RECORDS), ("get", PINNED), ("post", PINNED),
     ("get", "/api/v1/memory/extraction-errors"), ("get", "/api/v1/memory/policies")],
)  # fmt: skip
def test_anonymous_callers_are_refused(method, url):
    assert getattr(APIClient(), method)(url, {}, format="json").status_code in (401, 403)
    assert not MemoryRecord.objects.exists()


def test_the_extraction_error_list_of_others_needs_manage(people):
    ExtractionError.objects.create(
        owner_id=people.developer.pk, extractor="llm", error="malformed", raw_output="{"
    )
    url = "/api/v1/memory/extraction-errors"
    assert (
        client_as(people.viewer).get(url, {"user_id": str(people.developer.pk)}).status_code == 403
    )
    managed = client_as(people.admin).get(url, {"user_id": str(people.developer.pk)})
    assert managed.json()["count"] == 1


@pytest.mark.django_db(transaction=True)
def test_consolidate_asks_again_about_turns_whose_extraction_failed(
    people, openai_upstream, capsys
):
    chat_model_at(openai_upstream)
    openai_upstream.script.answer = "not json at all"
    response = record_turn(client_as(people.developer), "Mo my cat knocked over a vase.")
    assert response.status_code == 201
    [error] = ExtractionError.objects.filter(extractor="llm")
    assert error.resolved_at is None
    openai_upstream.script.answer = json.dumps(
        {"facts": [{"turn": 0, "subject": "Ivy", "attribute": "pet", "value": "Mo the cat"}]}
    )
    call_command("memory", "consolidate", "--user", str(people.developer.pk))
    assert "1 of 1 extraction errors resolved" in capsys.readouterr().out
    error.refresh_from_db()
    assert error.resolved_at is not None
    assert MemoryRecord.objects.filter(extracted_by="llm", text="Ivy pet: Mo the cat").exists()
