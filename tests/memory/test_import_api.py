"""``POST /api/v1/memory/import`` and ``manage.py memory import|export``: whole files or
nothing, idempotent, and kept when the embedding model is down."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from lumina.kernel import bus
from lumina.memory.models.records import Layer, MemoryRecord
from tests.memory.conftest import client_as
from tests.memory.records_support import (
    TURNS,
    at,
    embedding_model_down,
    history_json,
    history_jsonl,
    pending_events,
)

pytestmark = pytest.mark.django_db

URL = "/api/v1/memory/import"


def post(client, body: str, content_type: str = "application/json", **query):
    suffix = "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""
    return client.generic("POST", URL + suffix, data=body, content_type=content_type)


def turns_of(user) -> list[MemoryRecord]:
    return list(
        MemoryRecord.objects.filter(owner_id=user.pk, layer=Layer.WORKING).order_by("occurred_at")
    )


def test_a_json_history_is_imported_with_session_dates_and_facts(people):
    response = post(client_as(people.developer), history_json())
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["imported"] == TURNS
    assert body["skipped"] == 0
    assert body["sessions"] == 4
    assert body["embedding"] == "done"
    assert body["facts"] > 0
    turns = turns_of(people.developer)
    assert len(turns) == TURNS
    assert all(turn.embedding is not None for turn in turns)
    # Turns without a time of their own take their session's, one second apart, in order.
    assert turns[0].occurred_at == at(2023, 3, 10, 18)
    assert turns[1].occurred_at.second == 1
    facts = set(
        MemoryRecord.objects.filter(
            owner_id=people.developer.pk, layer=Layer.SEMANTIC, superseded_at__isnull=True
        ).values_list("text", flat=True)
    )
    assert {"Sam lives in Berlin", "Sam lives in Lisbon", "Sam works at Acme"} <= facts


def test_a_large_import_refreshes_the_planners_statistics(people, monkeypatch):
    """Until the table is analysed the planner walks an owner's b-tree for every search;
    a large import analyses it at once (a small one leaves that to autovacuum)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from lumina.memory.services import imports

    client = client_as(people.developer)
    monkeypatch.setattr(imports, "ANALYZE_AFTER", TURNS + 1)
    with CaptureQueriesContext(connection) as small:
        assert post(client, history_jsonl(), "application/x-ndjson").status_code == 201
    assert not any(q["sql"].startswith("ANALYZE") for q in small.captured_queries)
    monkeypatch.setattr(imports, "ANALYZE_AFTER", TURNS)
    with CaptureQueriesContext(connection) as large:
        assert post(client_as(people.other_developer), history_json()).status_code == 201
    analysed = [q["sql"] for q in large.captured_queries if q["sql"].startswith("ANALYZE")]
    assert analysed == ["ANALYZE memory_memoryrecord"]


def _pending_pages(index: str) -> int:
    """Pages the index's pending list held (merging them now, as vacuum would)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT gin_clean_pending_list(%s::regclass)", [index])
        return cursor.fetchone()[0]


def test_a_large_import_leaves_no_text_entries_pending(people, monkeypatch):
    """New rows' lexemes wait in the GIN index's pending list, which every text search
    reads whole until vacuum merges it; a large import merges it at once."""
    from lumina.memory.services import imports

    _pending_pages("memrec_search_gin")  # whatever the fixtures left
    monkeypatch.setattr(imports, "ANALYZE_AFTER", TURNS + 1)
    client = client_as(people.developer)
    assert post(client, history_jsonl(), "application/x-ndjson").status_code == 201
    assert _pending_pages("memrec_search_gin") > 0  # a small import leaves them to vacuum
    monkeypatch.setattr(imports, "ANALYZE_AFTER", TURNS)
    assert post(client_as(people.other_developer), history_json()).status_code == 201
    assert _pending_pages("memrec_search_gin") == 0
    assert _pending_pages("memrec_metadata_gin") == 0


def test_importing_the_same_file_again_adds_nothing(people):
    client = client_as(people.developer)
    assert post(client, history_jsonl(), "application/x-ndjson").status_code == 201
    count = MemoryRecord.objects.filter(owner_id=people.developer.pk).count()
    again = post(client, history_jsonl(), "application/x-ndjson")
    assert again.status_code == 201
    assert (again.json()["imported"], again.json()["skipped"]) == (0, TURNS)
    assert MemoryRecord.objects.filter(owner_id=people.developer.pk).count() == count


def test_jsonl_keeps_ids_times_and_extra_fields_as_metadata(people):
    response = post(client_as(people.developer), history_jsonl(), "application/x-ndjson")
    assert response.status_code == 201, response.content
    first = turns_of(people.developer)[0]
    assert first.external_id == "s1:0"
    assert first.metadata == {"topic": "life"}
    assert first.occurred_at == at(2023, 3, 10, 18)
    # Facts carry the metadata of the turn they came from.
    fact = MemoryRecord.objects.get(owner_id=people.developer.pk, text="Sam works at Acme")
    assert fact.metadata == {"topic": "life"}


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ('{"speaker": "Sam", "text": ""}', "line 3.text", "empty"),
        ('{"speaker": "Sam"}', "line 3.text", "text"),
        ('{"text": "hi", "occurred_at": "not a date at all"}', "line 3.occurred_at", "date"),
        ('{"text": "hi", "metadata": [1, 2]}', "line 3.metadata", "object"),
        ('{"text": "hi", "importance": 7}', "line 3.importance", "0 and 1"),
        ('{"text": "hi", "speaker": {"x": 1}}', "line 3.speaker", "string"),
        ("{not json", "line 3", "not JSON"),
        ("[1, 2]", "line 3.turns[0]", "object"),
        ('{"text": "hi", "speaker": "a\\u0000b"}', "line 3.speaker", "NUL"),
        ('{"text": "hi", "metadata": {"k": "\\u0000"}}', "line 3.metadata", "NUL"),
    ],
)
def test_one_bad_line_is_named_and_nothing_is_imported(people, line, field, words):
    good = '{"speaker": "Sam", "text": "I live in Porto."}'
    body = "\n".join([good, good.replace("Porto", "Faro"), line, good]) + "\n"
    response = post(client_as(people.developer), body, "application/x-ndjson")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert field in error["fields"], error
    assert words.lower() in " ".join(error["fields"][field]).lower()
    assert MemoryRecord.objects.filter(owner_id=people.developer.pk).count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("{", "line 1"),
        ('{"sessions": [{"turns": [{"text": "ok"}, {"text": 5}]}]}', "sessions[0].turns[1].text"),
        ('{"sessions": {"a": 1}}', "sessions"),
        (
            '{"sessions": [{"occurred_at": "9999-12-31T23:59:59Z", '
            '"turns": [{"text": "a"}, {"text": "b"}]}]}',
            "sessions[0].turns[1].occurred_at",
        ),
        ('{"something": []}', "body"),
        ('"just a string"', "body"),
        ('{"turns": []}', "body"),
    ],
)
def test_a_bad_json_file_names_where_and_imports_nothing(people, body, field):
    response = post(client_as(people.developer), body)
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert MemoryRecord.objects.filter(owner_id=people.developer.pk).count() == 0


def test_a_file_that_is_not_utf8_is_refused(people):
    response = client_as(people.developer).generic(
        "POST", URL, data=b'{"turns": [{"text": "caf\xe9"}]}', content_type="application/json"
    )
    assert response.status_code == 400
    assert "body" in response.json()["error"]["fields"]


@pytest.mark.django_db(transaction=True)
def test_an_import_while_the_embedding_model_is_down_is_kept_and_finished_later(people):
    client = client_as(people.developer)
    with embedding_model_down():
        response = post(client, history_json())
        assert response.status_code == 202, response.content
        assert response.json()["embedding"] == "pending"
        turns = turns_of(people.developer)
        assert len(turns) == TURNS
        assert all(turn.embedding is None for turn in turns)
        [pending] = pending_events("memory.RecordsEmbedPending")
        assert pending.attempts >= 1  # tried at commit, failed: kept with its error
        # Text search already finds what was imported.
        found = client.post(
            "/api/v1/memory/search", {"query": "pottery", "mode": "text"}, format="json"
        )
        assert found.status_code == 200
        assert any("pottery" in hit["record"]["text"] for hit in found.json()["hits"])

    bus.replay([pending.id])
    turns = turns_of(people.developer)
    assert all(turn.embedding is not None for turn in turns)
    assert not pending_events("memory.RecordsEmbedPending")
    assert MemoryRecord.objects.filter(
        owner_id=people.developer.pk, layer=Layer.SEMANTIC, text="Sam lives in Berlin"
    ).exists()


def test_a_model_that_fails_mid_import_keeps_every_fact_once(people, monkeypatch):
    # The first batch is embedded, the second is refused. The rules' facts were
    # consolidated after the first batch; finishing the rest later adds none twice.
    from lumina.memory.errors import EmbeddingUnavailableError
    from lumina.memory.services import records as records_service

    embed = records_service.embed_distinct

    def second_batch_refused(texts):
        if any("Berlin in winter" in text for text in texts):
            raise EmbeddingUnavailableError()
        return embed(texts)

    monkeypatch.setattr(records_service, "BATCH", 5)  # sessions 1-2, then 3-4
    monkeypatch.setattr(records_service, "embed_distinct", second_batch_refused)
    response = post(client_as(people.developer), history_json())
    assert response.status_code == 202, response.content
    turns = turns_of(people.developer)
    assert [turn.embedding is not None for turn in turns] == [True] * 5 + [False] * 5

    def current(text):
        return MemoryRecord.objects.filter(
            owner_id=people.developer.pk, layer=Layer.SEMANTIC, text=text, superseded_at=None
        )

    assert current("Sam lives in Berlin").get().embedding is not None
    assert current("Sam lives in Lisbon").get().valid_to is not None  # until the move

    def facts():
        return list(
            MemoryRecord.objects.filter(owner_id=people.developer.pk, layer=Layer.SEMANTIC)
            .values_list("text", "valid_from", "valid_to", "superseded_at")
            .order_by("text", "valid_from", "id")
        )

    before = facts()
    monkeypatch.setattr(records_service, "embed_distinct", embed)
    bus.replay([event.id for event in pending_events("memory.RecordsEmbedPending")])
    assert all(turn.embedding is not None for turn in turns_of(people.developer))
    assert facts() == before


def test_another_users_import_needs_memory_manage(people):
    other = people.other_developer.pk
    refused = post(client_as(people.developer), history_json(), user_id=other)
    assert refused.status_code == 403
    assert MemoryRecord.objects.filter(owner_id=other).count() == 0
    managed = post(client_as(people.admin), history_json(), user_id=other)
    assert managed.status_code == 201
    assert MemoryRecord.objects.filter(owner_id=other, layer=Layer.WORKING).count() == TURNS


@pytest.mark.parametrize("who", ["viewer", "nobody", "staff"])
def test_import_refuses_callers_without_memory_write(people, who):
    response = post(client_as(getattr(people, who)), history_json())
    assert response.status_code == 403
    assert MemoryRecord.objects.count() == 0


def test_import_refuses_anonymous_callers():
    from rest_framework.test import APIClient

    assert post(APIClient(), history_json()).status_code in (401, 403)


def test_the_cli_imports_and_exports_a_history_that_reads_back(people, tmp_path, capsys):
    source = tmp_path / "history.jsonl"
    source.write_text(history_jsonl())
    call_command("memory", "import", str(source), "--user", str(people.developer.pk))
    assert f"imported {TURNS} turns" in capsys.readouterr().out
    exported = tmp_path / "export.jsonl"
    call_command("memory", "export", "--user", str(people.developer.pk), "--output", str(exported))
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    assert len(lines) == TURNS
    assert {line["id"] for line in lines} == {
        f"s{i}:{p}"
        for i, (_, t) in enumerate(
            __import__("tests.memory.records_support", fromlist=["SESSIONS"]).SESSIONS, start=1
        )
        for p in range(len(t))
    }
    # Into another user's memory: the same turns, none skipped.
    call_command("memory", "import", str(exported), "--user", str(people.other_developer.pk))
    assert f"imported {TURNS} turns (0 already stored)" in capsys.readouterr().out


def test_the_cli_names_a_bad_line(people, tmp_path):
    from django.core.management.base import CommandError

    source = tmp_path / "bad.jsonl"
    source.write_text('{"text": "fine"}\n{"text": ""}\n')
    with pytest.raises(CommandError, match="line 2"):
        call_command("memory", "import", str(source), "--user", str(people.developer.pk))
    assert MemoryRecord.objects.count() == 0


def test_a_session_may_be_a_bare_list_of_role_and_content_turns(people):
    body = json.dumps(
        [
            [
                {"role": "user", "content": "I live in Faro."},
                {"role": "assistant", "content": "Nice."},
            ],
            [{"role": "user", "content": "I moved to Braga.", "timestamp": "2024-02-01T09:00:00Z"}],
        ]
    )
    response = post(client_as(people.developer), body)
    assert response.status_code == 201, response.content
    assert response.json()["imported"] == 3
    assert MemoryRecord.objects.filter(text="User lives in Braga", layer=Layer.SEMANTIC).exists()
