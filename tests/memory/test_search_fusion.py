"""How memory search fuses its retrievers' rankings (``search._fuse``), without a database."""

from __future__ import annotations

import uuid

import pytest

from lumina.memory.services.search import _fuse

A, B, C = (uuid.UUID(int=n) for n in (1, 2, 3))
EQUAL = {"vector": 1.0, "text": 1.0, "time": 1.0}


def test_a_similarity_counts_as_it_is_and_a_text_score_against_the_best():
    fused, parts = _fuse(
        {"vector": [(A, 0.3)], "text": [(A, 8.0), (B, 2.0)]}, EQUAL, calibrated={"vector"}
    )
    # A weak best match in meaning is not stretched to 1; the text ranking has no scale
    # of its own, so its best is 1.
    assert parts[A] == {"vector": 0.3, "vector_rank": 1, "text": 8.0, "text_rank": 1}
    assert 0 < fused[B] < fused[A] < 1
    only_vector, _ = _fuse({"vector": [(A, 0.3)]}, EQUAL, calibrated={"vector"})
    assert only_vector[A] == pytest.approx(0.3)


def test_the_retriever_that_separates_its_candidates_weighs_more():
    # Text singles out C; meaning ranks all three alike, A a hair ahead.
    rankings = {
        "vector": [(A, 0.52), (B, 0.51), (C, 0.50)],
        "text": [(C, 9.0), (A, 1.0), (B, 1.0)],
    }
    fused, _ = _fuse(rankings, EQUAL, calibrated={"vector"})
    assert max(fused, key=fused.get) == C
    # And the other way round: a sharp meaning ranking, a flat text one.
    rankings = {
        "vector": [(A, 0.9), (B, 0.2), (C, 0.1)],
        "text": [(B, 3.0), (C, 3.0), (A, 2.9)],
    }
    fused, _ = _fuse(rankings, EQUAL, calibrated={"vector"})
    assert max(fused, key=fused.get) == A


def test_a_record_first_everywhere_with_full_similarity_is_fully_relevant():
    fused, _ = _fuse(
        {"vector": [(A, 1.0), (B, 0.2)], "text": [(A, 4.0), (B, 1.0)]},
        EQUAL,
        calibrated={"vector"},
    )
    assert fused[A] == pytest.approx(1.0)
    weighted, _ = _fuse(
        {"vector": [(A, 1.0), (B, 0.2)], "text": [(B, 4.0), (A, 1.0)]},
        {**EQUAL, "text": 0.0},
        calibrated={"vector"},
    )
    assert weighted[A] == pytest.approx(1.0)  # a weight of 0 leaves the text ranking out


def test_a_ranking_that_orders_nothing_adds_nothing_and_a_lone_match_keeps_its_weight():
    # Text found three records alike (a name they share): meaning decides among them.
    fused, _ = _fuse(
        {"vector": [(B, 0.6), (A, 0.3), (C, 0.2)], "text": [(A, 1.0), (B, 1.0), (C, 1.0)]},
        EQUAL,
        calibrated={"vector"},
    )
    assert fused[B] == pytest.approx(0.6)
    # One text match: its ranking keeps the weight it was given.
    fused, _ = _fuse(
        {"vector": [(B, 0.6), (A, 0.3), (C, 0.2)], "text": [(A, 5.0)]},
        EQUAL,
        calibrated={"vector"},
    )
    assert fused[A] == pytest.approx((0.3 + 1.0) / 2)


def test_a_filter_that_matches_everything_or_nothing_compiles_to_sql():
    """The retrievers paste the eligibility filter into their statements."""
    from lumina.memory.models.records import MemoryRecord
    from lumina.memory.services.search import _where

    assert _where(MemoryRecord.objects.all()) == ("TRUE", [])
    assert _where(MemoryRecord.objects.filter(layer__in=[])) == ("FALSE", [])
    sql, params = _where(MemoryRecord.objects.filter(session_id="s1"))
    assert "session_id" in sql
    assert params == ["s1"]
