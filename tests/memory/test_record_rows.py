"""Records written by binary COPY (``record_rows.records_insert``) read back as given."""

from __future__ import annotations

import datetime as dt
import uuid

import numpy as np
import pytest
from django.db import connection

from lumina.memory.models.records import Layer, MemoryRecord
from lumina.memory.services.record_rows import records_insert

pytestmark = pytest.mark.django_db

WHEN = dt.datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)


def _rows(owner_id: uuid.UUID, count: int) -> list[MemoryRecord]:
    rng = np.random.default_rng(3)
    rows = []
    for index in range(count):
        vector = rng.standard_normal(384)
        rows.append(
            MemoryRecord(
                owner_id=owner_id,
                layer=Layer.SEMANTIC if index % 2 else Layer.WORKING,
                speaker="Zoë",
                text=f"Zoë lives in Kraków, fact {index} ✓",
                session_id="s1" if index % 2 else "",
                fact_key="zoë|lives_in" if index % 2 else "",
                embedding=list(vector / np.linalg.norm(vector)) if index != 1 else None,
                metadata={"channel": "café", "n": index, "nested": {"ok": True}},
                occurred_at=WHEN + dt.timedelta(seconds=index),
                importance=0.25 + index / 100,
                valid_from=WHEN if index % 2 else None,
                recorded_at=WHEN,
                provenance=[uuid.uuid4() for _ in range(index % 3)],
                extracted_by="rules" if index % 2 else "",
            )
        )
    return rows


@pytest.mark.parametrize("count", [1, 5])
def test_every_field_of_a_copied_record_reads_back_as_given(people, count):
    rows = _rows(people.developer.pk, count)
    records_insert(rows)
    stored = MemoryRecord.objects.in_bulk([row.id for row in rows])
    assert len(stored) == count
    for row in rows:
        got = stored[row.id]
        for field in ("owner_id", "layer", "speaker", "text", "session_id", "fact_key",
                      "metadata", "occurred_at", "importance", "valid_from", "valid_to",
                      "recorded_at", "provenance", "extracted_by", "superseded_by_id"):  # fmt: skip
            assert getattr(got, field) == getattr(row, field), field
        if row.embedding is None:
            assert got.embedding is None
        else:
            # Stored as 4-byte floats: exactly the float32 of each number given.
            expected = np.asarray(row.embedding, dtype=np.float32)
            assert np.array_equal(np.asarray(got.embedding, dtype=np.float32), expected)
        assert got.search  # the generated text-search column is computed


def test_the_vector_dumpers_stay_on_the_copys_cursor(people):
    records_insert(_rows(people.developer.pk, 3))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT embedding FROM memory_memoryrecord WHERE embedding IS NOT NULL LIMIT 1"
        )
        (value,) = cursor.fetchone()
    # Other statements still read a vector as pgvector's text, as the ORM expects.
    assert isinstance(value, str)
    assert value.startswith("[")


def test_a_batch_colliding_with_turns_already_stored_keeps_them_and_adds_the_rest(people):
    owner = people.developer.pk
    first = _rows(owner, 4)
    turns = [row for row in first if row.layer == Layer.WORKING]
    for index, row in enumerate(turns):
        row.content_hash = f"hash-{index}"
    records_insert(turns)
    # Another import of the same turns got there first: new ids, same content hashes.
    again = _rows(owner, 6)
    again = [row for row in again if row.layer == Layer.WORKING]
    for index, row in enumerate(again):
        row.content_hash = f"hash-{index}"
    records_insert(again, ignore_conflicts=True)
    stored = MemoryRecord.objects.filter(owner_id=owner, layer=Layer.WORKING)
    assert sorted(stored.values_list("content_hash", flat=True)) == ["hash-0", "hash-1", "hash-2"]
    assert {row.id for row in stored} == {turns[0].id, turns[1].id, again[2].id}
