"""The entity graph kept current from MemoryStored: entities, mentions, typed relations with
provenance, idempotence, and LLM answers that are checked and recorded when malformed."""

from __future__ import annotations

import json
import uuid

import pytest

from lumina.memory.events.records import MemoryStored
from lumina.memory.models.records import ExtractionError, Layer, MemoryRecord
from lumina.memory.models.topics import Entity, EntityMention, Relation, RelationEvidence
from lumina.memory.services import graph
from lumina.memory.services import records as records_service
from lumina.memory.services.graph import graph_index_records, graph_rebuild
from tests.memory.graph_support import HISTORY, by_text, store_history

pytestmark = pytest.mark.django_db


def relation(owner_id, source, kind, target):
    return Relation.objects.filter(
        owner_id=owner_id, source__key=source, target__key=target, kind=kind
    ).first()


def test_stored_records_are_read_into_the_graph_by_the_handler(
    people, django_capture_on_commit_callbacks
):
    owner = people.developer.id
    with django_capture_on_commit_callbacks(execute=True):
        records = store_history(owner)
    ana = Entity.objects.get(owner_id=owner, key="ana")
    assert ana.kind == "person"
    # Ana is named in five turns of three sessions: the mentions say which.
    mentions = EntityMention.objects.filter(entity=ana)
    mentioned_in = set(mentions.filter(weight=1).values_list("record_id", flat=True))
    assert by_text(records, "Farfetch").id in mentioned_in
    assert by_text(records, "moved to Lisbon").id in mentioned_in
    assert ana.mention_count == len(mentioned_in) == 5
    assert {r.session_id for r in MemoryRecord.objects.filter(id__in=mentioned_in)} == {
        "s1",
        "s3",
        "s4",
    }
    family = relation(owner, "caroline", "family", "ana")
    assert family is not None
    assert family.weight == 1
    evidence = RelationEvidence.objects.get(relation=family)
    assert evidence.record_id == by_text(records, "My sister Ana").id
    assert evidence.quote == "My sister Ana"
    pet = relation(owner, "melanie", "pet", "biscuit")
    assert pet is not None
    co = relation(owner, "ana", "mentioned_with", "lisbon")
    assert co is not None
    assert co.weight == 3  # "moved to Lisbon", "Farfetch … Lisbon office", "visit Ana in Lisbon"
    # "She rents a flat…" right after "Ana moved to Lisbon…": a weaker, pronoun mention.
    referring = mentions.get(record=by_text(records, "She rents a flat"))
    assert referring.weight == 0.5
    assert ana.first_seen_at == by_text(records, "getting married").occurred_at
    assert ana.last_seen_at == by_text(records, "visit Ana").occurred_at


def test_indexing_again_changes_nothing(people):
    owner = people.developer.id
    records = store_history(owner, announce=False)
    ids = [r.id for r in records]
    graph_index_records(record_ids=ids, llm=False)

    def snapshot():
        return (
            sorted(Entity.objects.filter(owner_id=owner).values_list("key", "mention_count")),
            sorted(
                Relation.objects.filter(owner_id=owner).values_list(
                    "source__key", "target__key", "kind", "weight"
                )
            ),
            EntityMention.objects.filter(record_id__in=ids).count(),
        )

    before = snapshot()
    assert before[2] > 0
    graph_index_records(record_ids=ids[:7], llm=False)
    graph_index_records(record_ids=ids, llm=False)
    assert snapshot() == before
    graph_rebuild(owner_id=owner)
    assert snapshot() == before


def test_counts_and_weights_hold_when_records_are_indexed_in_several_chunks(people, monkeypatch):
    owner = people.developer.id
    records = store_history(owner, announce=False)
    monkeypatch.setattr(graph, "BATCH", 3)
    graph_index_records(record_ids=[r.id for r in records], llm=False)
    entities = Entity.objects.filter(owner_id=owner)
    assert entities.filter(mention_count__gt=1).exists()
    for entity in entities:
        assert entity.mention_count == entity.mentions.filter(weight=1).count(), entity.key
    relations = Relation.objects.filter(owner_id=owner)
    assert relations.exists()
    for edge in relations:
        assert edge.weight == edge.evidence.count(), str(edge)
        assert edge.first_seen_at <= edge.last_seen_at


def test_graphs_of_two_owners_stay_apart(people):
    store_history(people.developer.id, announce=False)
    others = store_history(people.other_developer.id, HISTORY[:3], announce=False)
    graph_index_records(
        record_ids=list(MemoryRecord.objects.values_list("id", flat=True)), llm=False
    )
    theirs = Entity.objects.get(owner_id=people.other_developer.id, key="ana")
    mine = Entity.objects.get(owner_id=people.developer.id, key="ana")
    assert theirs.id != mine.id
    assert set(EntityMention.objects.filter(entity=theirs).values_list("record_id", flat=True)) <= {
        r.id for r in others
    }


def test_pinned_blocks_stay_out_of_the_graph(people):
    block = MemoryRecord.objects.create(
        owner_id=people.developer.id, layer=Layer.PINNED, label="human", text="Name: Ana Lima"
    )
    assert graph_index_records(record_ids=[block.id], llm=False).records == 0
    assert not Entity.objects.filter(owner_id=people.developer.id).exists()


def test_llm_reading_adds_to_the_rules(people):
    owner = people.developer.id
    record = store_history(owner, [("s9", "Caroline", "ana is a nurse in lisbon")], announce=False)[
        0
    ]

    def model(text, speaker):
        assert speaker == "Caroline"
        return json.dumps(
            {
                "entities": [
                    {"name": "Ana", "kind": "person"},
                    {"name": "Lisbon", "kind": "place"},
                ],
                "relations": [{"source": "Ana", "target": "Lisbon", "kind": "lives_in"}],
            }
        )

    result = graph_index_records(record_ids=[record.id], llm=model)
    assert result.extraction_errors == 0
    found = relation(owner, "ana", "lives_in", "lisbon")
    assert found is not None
    assert found.extracted_by == "llm"
    assert Entity.objects.get(owner_id=owner, key="lisbon").kind == "place"


@pytest.mark.parametrize(
    "answer",
    ["Ana lives in Lisbon.", '{"entities": "Ana"}', '{"relations": [{"source": 3}]}'],
)
def test_malformed_llm_answer_is_recorded_and_the_rules_reading_kept(people, answer):
    owner = people.developer.id
    record = store_history(
        owner, [("s9", "Caroline", "My sister Ana moved to Lisbon.")], announce=False
    )[0]
    result = graph_index_records(record_ids=[record.id], llm=lambda text, speaker: answer)
    assert result.extraction_errors == 1
    error = ExtractionError.objects.get(owner_id=owner)
    assert error.extractor == "graph-llm"
    assert error.turn_ids == [record.id]
    assert error.raw_output == answer
    # Nothing dropped: the deterministic reading is in the graph.
    assert relation(owner, "caroline", "family", "ana") is not None
    assert relation(owner, "ana", "lives_in", "lisbon") is not None


def test_a_failing_chat_model_is_recorded_without_its_error_text(people):
    owner = people.developer.id
    record = store_history(owner, [("s9", "Caroline", "My sister Ana.")], announce=False)[0]

    def down(text, speaker):
        raise ConnectionError("upstream said: key sk-secret is invalid")

    assert graph_index_records(record_ids=[record.id], llm=down).extraction_errors == 1
    error = ExtractionError.objects.get(owner_id=owner)
    assert "sk-secret" not in error.error
    assert "ConnectionError" in error.error
    assert relation(owner, "caroline", "family", "ana") is not None


def test_without_a_real_chat_model_no_model_is_called(people, monkeypatch):
    from lumina.memory.services import graph

    monkeypatch.setattr(graph, "_llm_answer", lambda *a: pytest.fail("called a model"))
    record = store_history(people.developer.id, [("s9", "Jo", "Hi Ana")], announce=False)[0]
    assert graph_index_records(record_ids=[record.id]).records == 1


def _import(people, history=HISTORY):
    from lumina.memory.api import memories_import
    from lumina.security.types import Actor

    lines = [
        {
            "session_id": session,
            "speaker": speaker,
            "text": text,
            "timestamp": f"2024-{1 + i // 8:02d}-{1 + i:02d}T09:00:00Z",
        }
        for i, (session, speaker, text) in enumerate(history)
    ]
    actor = Actor.for_user(people.developer, mfa_verified=False)
    return memories_import(actor=actor, text="\n".join(json.dumps(x) for x in lines), fmt="jsonl")


def _graph(owner):
    return (
        sorted(Entity.objects.filter(owner_id=owner).values_list("key", "kind", "mention_count")),
        sorted(
            EntityMention.objects.filter(entity__owner_id=owner).values_list(
                "entity__key", "record_id", "weight"
            )
        ),
        sorted(
            Relation.objects.filter(owner_id=owner).values_list(
                "source__key", "target__key", "kind", "weight"
            )
        ),
    )


def test_an_import_reads_its_turns_into_the_graph_before_it_commits(people, monkeypatch):
    # The import's transaction holds the graph of its turns: no handler has run yet here
    # (the test's transaction never commits), and their MemoryStored events say so.
    published = []
    monkeypatch.setattr(records_service, "publish_many", published.extend)
    monkeypatch.setattr(graph, "BATCH", 4)  # several graph batches, one recount
    monkeypatch.setattr(records_service, "BATCH", 5)  # several import batches
    _import(people)
    owner = people.developer.id
    inline = _graph(owner)
    assert ("ana", "person", 5) in inline[0]
    assert any(row[:3] == ("caroline", "ana", "family") for row in inline[2])
    turns = [e for e in published if isinstance(e, MemoryStored) and e.layer == Layer.WORKING]
    assert turns
    assert all(e.graph_indexed for e in turns)
    # The same graph as the MemoryStored handler builds from the same records.
    graph_rebuild(owner_id=owner)
    assert _graph(owner) == inline


def test_the_handler_leaves_records_an_import_indexed(people, monkeypatch):
    from lumina.memory.handlers import topics as handlers

    indexed = []
    monkeypatch.setattr(
        handlers, "graph_index_records", lambda record_ids: indexed.extend(record_ids)
    )
    owner = people.developer.id
    done, fresh = uuid.uuid4(), uuid.uuid4()
    handlers.graph_and_topics_on_stored(
        [
            MemoryStored(
                owner_id=owner, layer=Layer.WORKING, record_ids=(done,), graph_indexed=True
            ),
            MemoryStored(owner_id=owner, layer=Layer.SEMANTIC, record_ids=(fresh,)),
        ]
    )
    assert indexed == [fresh]


def test_with_a_chat_model_an_import_leaves_the_graph_to_the_handler(people, monkeypatch):
    # The model reads each record: a call per record stays out of the import's transaction.
    published = []
    monkeypatch.setattr(records_service, "publish_many", published.extend)
    monkeypatch.setattr(graph, "_llm_configured", lambda: True)
    monkeypatch.setattr(records_service, "llm_available", lambda: False)
    _import(people)
    assert not Entity.objects.filter(owner_id=people.developer.id).exists()
    turns = [e for e in published if isinstance(e, MemoryStored) and e.layer == Layer.WORKING]
    assert turns
    assert not any(e.graph_indexed for e in turns)
