"""Recording turns, facts and their consolidation, through the services and ``memory.api``."""

from __future__ import annotations

import datetime as dt

import pytest

from lumina.memory.models.records import Layer, MemoryRecord
from lumina.memory.services.records import turn_record
from lumina.memory.services.search import SearchQuery, memory_search
from tests.memory.conftest import actor_as

pytestmark = pytest.mark.django_db


def when(year: int, month: int = 1, day: int = 1) -> dt.datetime:
    return dt.datetime(year, month, day, 12, tzinfo=dt.UTC)


def facts(owner_id, *, current: bool = True) -> list[MemoryRecord]:
    rows = MemoryRecord.objects.filter(owner_id=owner_id, layer=Layer.SEMANTIC)
    if current:
        rows = rows.filter(superseded_at__isnull=True)
    return list(rows.order_by("recorded_at", "valid_from"))


def test_a_turn_is_stored_embedded_with_its_metadata_and_time(people):
    actor = actor_as(people.developer)
    result = turn_record(
        actor=actor,
        text="We talked about the garden.",
        speaker="Anna",
        session_id="s1",
        occurred_at=when(2023, 4, 2),
        metadata={"channel": "phone"},
    )
    assert result.created
    row = MemoryRecord.objects.get(id=result.record.id)
    assert (row.layer, row.speaker, row.session_id) == (Layer.WORKING, "Anna", "s1")
    assert row.occurred_at == when(2023, 4, 2)
    assert row.metadata == {"channel": "phone"}
    assert row.embedding is not None
    assert len(row.embedding) == 384
    assert row.owner_id == people.developer.pk


def test_recording_the_same_turn_twice_stores_it_once(people):
    actor = actor_as(people.developer)
    first = turn_record(actor=actor, text="Hello", speaker="Anna", occurred_at=when(2023))
    again = turn_record(actor=actor, text="Hello", speaker="Anna", occurred_at=when(2023))
    assert first.created
    assert not again.created
    assert again.record.id == first.record.id
    assert MemoryRecord.objects.filter(owner_id=people.developer.pk).count() == 1


def test_a_contradicting_fact_supersedes_the_old_one_and_deletes_nothing(people):
    actor = actor_as(people.developer)
    moved_in = turn_record(
        actor=actor, text="I live in Lisbon.", speaker="Anna", occurred_at=when(2022, 3)
    )
    assert [d.decision for d in moved_in.facts] == ["add"]
    moved = turn_record(
        actor=actor, text="I moved to Berlin!", speaker="Anna", occurred_at=when(2024, 5)
    )
    assert [d.decision for d in moved.facts] == ["supersede"]

    current = facts(people.developer.pk)
    lisbon_then = next(row for row in current if "Lisbon" in row.text)
    berlin = next(row for row in current if "Berlin" in row.text)
    assert berlin.valid_to is None
    assert berlin.valid_from == when(2024, 5)
    # What held is kept as history: Lisbon until Berlin began.
    assert (lisbon_then.valid_from, lisbon_then.valid_to) == (when(2022, 3), when(2024, 5))
    original = MemoryRecord.objects.get(
        owner_id=people.developer.pk, text="Anna lives in Lisbon", superseded_at__isnull=False
    )
    assert original.valid_to is None  # what we believed before we knew better
    assert original.superseded_by_id == berlin.id


def test_as_of_answers_what_was_believed_on_a_date(people):
    actor = actor_as(people.developer)
    turn_record(actor=actor, text="I work at Acme.", speaker="Anna", occurred_at=when(2022))
    before = dt.datetime.now(dt.UTC)
    turn_record(actor=actor, text="I work at Globex.", speaker="Anna", occurred_at=when(2024))

    def believed(as_of):
        result = memory_search(
            actor=actor,
            search=SearchQuery(
                query="Where does Anna work?", layers=(Layer.SEMANTIC,), as_of=as_of
            ),
        )
        return [(h.record.text, h.record.valid_to) for h in result.hits]

    assert believed(before) == [("Anna works at Acme", None)]
    now_believed = believed(dt.datetime.now(dt.UTC))
    assert ("Anna works at Globex", None) in now_believed
    assert ("Anna works at Acme", when(2024)) in now_believed


def test_the_same_fact_again_is_a_noop_that_adds_provenance(people):
    actor = actor_as(people.developer)
    first = turn_record(actor=actor, text="I love hiking.", speaker="Bo", occurred_at=when(2023))
    second = turn_record(
        actor=actor, text="Honestly I love hiking", speaker="Bo", occurred_at=when(2023, 6)
    )
    assert [d.decision for d in second.facts] == ["noop"]
    [fact] = facts(people.developer.pk)
    assert set(fact.provenance) == {first.record.id, second.record.id}


def test_a_refinement_updates_and_keeps_the_old_wording(people):
    actor = actor_as(people.developer)
    turn_record(actor=actor, text="I work at Acme.", speaker="Cy", occurred_at=when(2023))
    refined = turn_record(
        actor=actor, text="I work at Acme Robotics.", speaker="Cy", occurred_at=when(2023, 2)
    )
    assert [d.decision for d in refined.facts] == ["update"]
    [fact] = facts(people.developer.pk)
    assert fact.text == "Cy works at Acme Robotics"
    assert fact.valid_from == when(2023)  # the same truth, better worded
    old = MemoryRecord.objects.get(text="Cy works at Acme")
    assert old.superseded_by_id == fact.id
    assert old.valid_to is None


def test_an_older_statement_imported_late_is_kept_as_history(people):
    actor = actor_as(people.developer)
    turn_record(actor=actor, text="I live in Oslo.", speaker="Di", occurred_at=when(2024))
    late = turn_record(actor=actor, text="I live in Rome.", speaker="Di", occurred_at=when(2020))
    assert [d.decision for d in late.facts] == ["add"]
    rome = MemoryRecord.objects.get(text="Di lives in Rome")
    assert (rome.valid_from, rome.valid_to) == (when(2020), when(2024))
    oslo = MemoryRecord.objects.get(text="Di lives in Oslo")
    assert oslo.valid_to is None
    assert oslo.superseded_at is None


def test_facts_of_an_import_wait_for_the_outbox_when_the_model_fails_after_the_turns(
    people, monkeypatch
):
    from lumina.memory.errors import EmbeddingUnavailableError
    from lumina.memory.services import records
    from lumina.memory.services.imports import records_import
    from tests.memory.records_support import pending_events

    real = records.embed_distinct
    calls = []

    def turns_only(texts):
        calls.append(list(texts))
        if len(calls) > 1:  # the turns' batch answers; the facts' call finds the model down
            raise EmbeddingUnavailableError()
        return real(texts)

    monkeypatch.setattr(records, "embed_distinct", turns_only)
    owner = people.developer.id
    lines = [
        '{"session_id": "s1", "speaker": "Sam", "text": "I live in Lisbon.", '
        '"occurred_at": "2023-03-10T18:00:00Z"}',
        '{"session_id": "s1", "speaker": "Sam", "text": "I work at Acme.", '
        '"occurred_at": "2023-03-10T18:01:00Z"}',
    ]
    result = records_import(actor=actor_as(people.developer), text="\n".join(lines), fmt="jsonl")
    assert (result.imported, result.embedding) == (2, "done")
    stored = facts(owner)
    assert {f.text for f in stored} == {"Sam lives in Lisbon", "Sam works at Acme"}
    assert all(f.embedding is None for f in stored)  # kept, not lost
    waiting = {
        record_id
        for event in pending_events("memory.RecordsEmbedPending")
        for record_id in event.payload["record_ids"]
    }
    assert {str(f.id) for f in stored} <= waiting
    # The outbox's handler embeds them once the model answers.
    assert records.records_embed_pending(owner_id=owner, record_ids=[f.id for f in stored]) == 2
    assert all(f.embedding is not None for f in facts(owner))


@pytest.mark.parametrize(
    ("said", "facts"),
    [
        ("I like her already.", []),  # a pronoun with a filler is no fact
        ("We love them still.", []),
        ("I visited my parents in Leeds.", ["Ravi visited Ravi's parents in Leeds"]),
        ("I really like pottery a lot.", ["Ravi likes pottery"]),
    ],
)
def test_rule_facts_drop_pronouns_and_name_the_speakers_own(said, facts):
    import uuid

    from lumina.memory.services.facts import TurnForExtraction, rules_extract

    turn = TurnForExtraction(uuid.uuid4(), "Ravi", said, dt.datetime(2024, 5, 1, tzinfo=dt.UTC))
    assert [candidate.text for candidate in rules_extract([turn])] == facts
