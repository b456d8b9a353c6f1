"""Graph-expanded search: linked evidence from other sessions climbs, the rest keeps the
hybrid order, nothing outside the eligible set is read, and plain hybrid never calls it."""

from __future__ import annotations

import dataclasses

import pytest

from lumina.memory.models.records import MemoryRecord
from lumina.memory.services import graph_search as graph_module
from lumina.memory.services.graph import graph_index_records
from lumina.memory.services.graph_search import graph_search
from tests.memory.graph_support import by_text, store_history

pytestmark = pytest.mark.django_db

QUESTION = "Where does Caroline's sister live now, and where does she work?"


@pytest.fixture
def history(people):
    records = store_history(people.developer.id, announce=False)
    graph_index_records(record_ids=[r.id for r in records], llm=False)
    return records


def spaced(hybrid: list) -> dict:
    """Relevance as hybrid search gives it when one hit stands out and the rest match
    weakly: the first 0.9, the others from 0.2 down to 0.05."""
    rest = max(len(hybrid) - 2, 1)
    return {r: 0.9 if i == 0 else 0.2 - 0.15 * (i - 1) / rest for i, r in enumerate(hybrid)}


def test_entities_of_the_top_hit_pull_in_evidence_from_other_sessions(people, history):
    owner = people.developer.id
    sister = by_text(history, "My sister Ana")
    moved = by_text(history, "moved to Lisbon")
    works = by_text(history, "Farfetch")
    # A hybrid ranking that found the sister turn first, then weak matches that say
    # nothing about Ana; the other turns about her come after the ten retrieved.
    others = [r.id for r in history if "Ana" not in r.text]
    about_ana = [r.id for r in history if "Ana" in r.text and r.id not in (sister.id, works.id)]
    hybrid = [sister.id, *others[:9], *about_ana, *others[9:], works.id]
    scores = spaced(hybrid)
    ranked = graph_search(
        owner_id=owner,
        hybrid=hybrid,
        eligible=MemoryRecord.objects.filter(owner_id=owner),
        query_text=QUESTION,
        k=10,
        scores=scores,
    )
    ids = [r.record_id for r in ranked]
    found = {r.record_id: r for r in ranked}
    assert ids[0] == sister.id
    # The turns about Ana in sessions s3 and s4 climbed into the top ten, each with a
    # score derived from the hit that reached it, above its own.
    assert {moved.id, works.id} <= set(ids[:10])
    assert {moved.session_id, works.session_id} == {"s3", "s4"}
    for record_id in (moved.id, works.id):
        assert found[record_id].lifted
        assert found[record_id].score == found[record_id].graph_score > scores[record_id]
        assert found[record_id].graph_score < scores[sister.id]  # never past its seed
    assert "Ana" in found[works.id].via
    assert sister.id in found[works.id].seeds
    assert found[works.id].hybrid_rank == len(hybrid)
    # The retrieved ten keep their own scores and their order among themselves.
    for record_id in hybrid[:10]:
        assert found[record_id].score == round(scores[record_id], 6)
        assert not found[record_id].lifted
    kept = [r for r in ids if r in hybrid[:10]]
    assert kept == hybrid[: len(kept)]


def test_an_entity_another_retrieved_record_names_adds_nothing(people, history):
    owner = people.developer.id
    sister = by_text(history, "My sister Ana")
    congratulations = by_text(history, "Congratulations to Ana")
    works = by_text(history, "Farfetch")
    # Ana's evidence is already among the retrieved: she leads nowhere new.
    rest = [r.id for r in history if r.id not in (sister.id, congratulations.id, works.id)]
    hybrid = [sister.id, *rest[:5], congratulations.id, *rest[5:], works.id]
    ranked = graph_search(
        owner_id=owner,
        hybrid=hybrid,
        eligible=MemoryRecord.objects.filter(owner_id=owner),
        query_text="Tell me about the family",
        k=10,
        scores=spaced(hybrid),
    )
    assert all("Ana" not in r.via for r in ranked)


def test_nothing_outside_the_eligible_set_is_returned(people, history):
    owner = people.developer.id
    sister = by_text(history, "My sister Ana")
    eligible = MemoryRecord.objects.filter(owner_id=owner, session_id__in=["s1", "s2"])
    # Another user's turns about Ana exist too.
    store_history(people.other_developer.id, [("s3", "Caroline", "Ana loves Lisbon.")])
    graph_index_records(
        record_ids=list(
            MemoryRecord.objects.filter(owner_id=people.other_developer.id).values_list(
                "id", flat=True
            )
        ),
        llm=False,
    )
    ranked = graph_search(
        owner_id=owner,
        hybrid=[sister.id],
        eligible=eligible,
        query_text=QUESTION,
        k=20,
    )
    allowed = set(eligible.values_list("id", flat=True))
    assert ranked
    assert {r.record_id for r in ranked} <= allowed


def test_the_turns_around_a_hit_are_linked_in_its_session(people, history):
    owner = people.developer.id
    question = by_text(history, "Where is the wedding going to be?")
    answer = by_text(history, "vineyard near Porto")
    ranked = graph_search(
        owner_id=owner,
        hybrid=[question.id],
        eligible=MemoryRecord.objects.filter(owner_id=owner),
        query_text="Where was Ana's wedding?",
        k=20,
    )
    found = {r.record_id: r for r in ranked}
    assert answer.id in found
    assert "the turns around a hit" in found[answer.id].via


def test_an_entity_in_most_records_links_nothing(people):
    owner = people.developer.id
    records = store_history(
        owner,
        [("s1", "Jo", f"Bob said thing number {i} about the garden.") for i in range(10)],
        announce=False,
    )
    graph_index_records(record_ids=[r.id for r in records], llm=False)
    ranked = graph_search(
        owner_id=owner,
        hybrid=[records[0].id],
        eligible=MemoryRecord.objects.filter(owner_id=owner),
        query_text="What did Bob say?",
        k=10,
    )
    assert all("Bob" not in r.via for r in ranked)


def test_plain_hybrid_search_does_no_graph_work(people, history, monkeypatch):
    from lumina.memory.services.search import SearchQuery, search_records

    def refuse(**kwargs):
        raise AssertionError("hybrid search called the graph")

    monkeypatch.setattr(graph_module, "graph_search", refuse)
    owner = people.developer.id
    hybrid = search_records(owner_id=owner, search=SearchQuery(query=QUESTION, k=5))
    assert hybrid.hits
    with pytest.raises(AssertionError, match="called the graph"):
        search_records(owner_id=owner, search=SearchQuery(query=QUESTION, k=5, mode="graph"))


def _lifting(lift: list, *, via: str = "Ana"):
    """A graph_search that keeps the hybrid scores and lifts ``lift`` above all of them."""

    def fake(*, hybrid, scores, k, **kwargs):
        ranked = [
            graph_module.GraphRanked(r, 0.99, None, 0.99, 0.5, (via,), (hybrid[0],), True)
            for r in lift
        ]
        ranked += [
            graph_module.GraphRanked(r, scores[r], i, 0.0, 0.0, (), ())
            for i, r in enumerate(hybrid, start=1)
            if r not in lift
        ]
        return ranked

    return fake


def test_graph_mode_explains_linked_hits(people, history, monkeypatch):
    from lumina.memory.services.search import SearchQuery, search_records

    owner = people.developer.id
    biscuit = by_text(history, "My dog Biscuit")
    monkeypatch.setattr(graph_module, "graph_search", _lifting([biscuit.id]))
    result = search_records(
        owner_id=owner, search=SearchQuery(query=QUESTION, k=5, mode="graph", time_aware=False)
    )
    hit = next(hit for hit in result.hits if hit.record.id == biscuit.id)
    assert hit.scores["graph"] == 0.99
    assert hit.scores["graph_link"] == 0.5
    assert "linked through Ana" in hit.why


def test_records_the_graph_lifted_take_at_most_half_the_hits(people, history, monkeypatch):
    from lumina.memory.services.search import SearchQuery, search_records

    owner = people.developer.id
    lifted = [r.id for r in history if "pottery" in r.text.lower() or "marathon" in r.text]
    assert len(lifted) >= 4
    monkeypatch.setattr(graph_module, "graph_search", _lifting(lifted))
    result = search_records(
        owner_id=owner, search=SearchQuery(query=QUESTION, k=4, mode="graph", time_aware=False)
    )
    ids = [hit.record.id for hit in result.hits]
    assert len(ids) == 4
    assert sum(record_id in lifted for record_id in ids) == 2


def test_the_best_hybrid_hits_keep_their_places(people, history, monkeypatch):
    from lumina.memory.services.search import SearchQuery, search_records

    owner = people.developer.id
    query = SearchQuery(query=QUESTION, k=10, mode="hybrid", time_aware=False)
    plain = [hit.record.id for hit in search_records(owner_id=owner, search=query).hits]
    # The graph lifts every record hybrid ranked below the first five above all of them.
    lifted = [r.id for r in history if r.id not in plain[:5]]
    monkeypatch.setattr(graph_module, "graph_search", _lifting(lifted))
    graph = search_records(owner_id=owner, search=dataclasses.replace(query, mode="graph"))
    ids = [hit.record.id for hit in graph.hits]
    assert ids[:5] == plain[:5]
    assert all(record_id in lifted for record_id in ids[5:])
    assert len(ids) == 10
