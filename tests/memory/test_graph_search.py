"""Graph-expanded search: linked evidence from other sessions climbs, the rest keeps the
hybrid order, nothing outside the eligible set is read, and plain hybrid never calls it."""

from __future__ import annotations

import pytest

from lumina.memory.models.records import MemoryRecord
from lumina.memory.services import graph_search as graph_module
from lumina.memory.services.graph import graph_index_records
from lumina.memory.services.graph_search import graph_search
from lumina.providers.local.minilm import embed
from tests.memory.graph_support import by_text, store_history

pytestmark = pytest.mark.django_db

QUESTION = "Where does Caroline's sister live now, and where does she work?"


@pytest.fixture
def history(people):
    records = store_history(people.developer.id, announce=False)
    graph_index_records(record_ids=[r.id for r in records], llm=False)
    return records


def query_vector(text: str) -> list[float]:
    vectors, _ = embed([text])
    return vectors[0].tolist()


def test_entities_of_the_top_hit_pull_in_evidence_from_other_sessions(people, history):
    owner = people.developer.id
    sister = by_text(history, "My sister Ana")
    moved = by_text(history, "moved to Lisbon")
    works = by_text(history, "Farfetch")
    # A hybrid ranking that found the sister turn first but ranks the rest by chance.
    unrelated = [r.id for r in history if r.id not in (sister.id, moved.id, works.id)]
    hybrid = [sister.id, *unrelated[:12], moved.id, *unrelated[12:], works.id]
    ranked = graph_search(
        owner_id=owner,
        hybrid=hybrid,
        eligible=MemoryRecord.objects.filter(owner_id=owner),
        query_text=QUESTION,
        query_embedding=query_vector(QUESTION),
        k=10,
    )
    ids = [r.record_id for r in ranked]
    assert ids[0] == sister.id
    # Both other turns about Ana (sessions s3 and s4) climbed into the top ten, past the
    # unlinked turns hybrid search had put before them.
    assert {moved.id, works.id} <= set(ids)
    assert ids.index(moved.id) + 1 < hybrid.index(moved.id) + 1 - 4
    assert ids.index(works.id) + 1 < hybrid.index(works.id) + 1 - 10
    assert {moved.session_id, works.session_id} == {"s3", "s4"}
    found = {r.record_id: r for r in ranked}
    assert "Ana" in found[works.id].via
    assert sister.id in found[works.id].seeds
    assert found[works.id].hybrid_rank == len(hybrid)
    assert found[sister.id].link == 0
    # Unlinked records keep their hybrid order among themselves.
    unlinked = [r.record_id for r in ranked if r.link == 0]
    assert unlinked == sorted(unlinked, key=hybrid.index)


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
        query_embedding=query_vector(QUESTION),
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
        query_embedding=query_vector("Where was Ana's wedding?"),
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
        query_embedding=None,
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


def test_graph_mode_explains_linked_hits(people, history):
    from lumina.memory.services.search import SearchQuery, search_records

    owner = people.developer.id
    result = search_records(
        owner_id=owner, search=SearchQuery(query=QUESTION, k=10, mode="graph", time_aware=False)
    )
    texts = [hit.record.text for hit in result.hits]
    assert any("Farfetch" in t for t in texts)
    assert any("linked through" in why for hit in result.hits for why in hit.why)
