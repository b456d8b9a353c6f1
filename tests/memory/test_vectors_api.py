"""memory.api for vectors: collections, upserts, filters, search plans, hybrid fusion."""

from __future__ import annotations

import math

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lumina.kernel.errors import ApplicationError, ConflictError, PermissionDeniedError
from lumina.memory import api as memory
from lumina.memory.errors import CollectionNotFoundError, InvalidInputError, RecordNotFoundError
from lumina.memory.models.vectors import Collection
from lumina.memory.selectors import vector_access
from lumina.memory.selectors import vectors as vector_reads
from tests.memory.conftest import actor_as
from tests.memory.vectors_support import DIM, exact_cosine, fill, make_collection, unit
from tests.security.rbac_support import events_named

pytestmark = pytest.mark.django_db


@pytest.fixture
def dev(people):
    return actor_as(people.developer)


def _field(error: ApplicationError) -> str:
    return next(iter(error.fields))


# --- Collections ------------------------------------------------------------------------


def test_a_collection_fixes_model_dimension_and_distance(dev):
    info = make_collection(dev, "docs", distance="l2", hnsw_m=8, hnsw_ef_construction=32)
    assert (info.name, info.dimension, info.distance, info.hnsw_m) == ("docs", DIM, "l2", 8)
    assert info.owner_id == dev.user_id
    assert memory.collection_get(actor=dev, collection="docs") == info
    assert memory.collection_get(actor=dev, collection=str(info.id)).name == "docs"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s",
            [f"memory_vec_{info.id.hex}_0"],
        )
        (definition,) = cursor.fetchone()
    assert "hnsw" in definition
    assert f"halfvec({DIM})" in definition
    assert "halfvec_l2_ops" in definition
    assert str(info.id) in definition
    assert info.index_type == "halfvec"


def test_a_new_collection_builds_the_measured_graph_by_default(dev):
    """m=24, ef_construction=128 (ADR 0034), in the index itself as well."""
    info = make_collection(dev, "graph")
    assert (info.hnsw_m, info.hnsw_ef_construction) == (24, 128)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s",
            [f"memory_vec_{info.id.hex}_0"],
        )
        (definition,) = cursor.fetchone()
    assert "m='24'" in definition.replace(" ", "")
    assert "ef_construction='128'" in definition.replace(" ", "")


def test_the_default_model_gives_its_dimension_without_asking(dev):
    info = memory.collection_create(actor=dev, name="minilm")
    assert (info.embedding_model, info.dimension) == ("all-MiniLM-L6-v2", 384)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"name": "bad name!"}, "name"),
        ({"distance": "manhattan"}, "distance"),
        ({"dimension": 0}, "dimension"),
        ({"dimension": 2001}, "dimension"),
        ({"hnsw_m": 1}, "hnsw_m"),
        ({"hnsw_m": 16, "hnsw_ef_construction": 20}, "hnsw_ef_construction"),
        ({"embedding_model": "all-MiniLM-L6-v2", "dimension": 768}, "dimension"),
        ({"embedding_model": "", "dimension": None}, "dimension"),
    ],
)
def test_bad_collection_settings_are_refused_naming_the_field(dev, options, field):
    options = {"name": "ok", "embedding_model": "", "dimension": DIM, **options}
    with pytest.raises(InvalidInputError) as caught:
        memory.collection_create(actor=dev, **options)
    assert _field(caught.value) == field


def test_names_are_unique_per_owner_only(people, dev):
    make_collection(dev, "same")
    with pytest.raises(ConflictError):
        make_collection(dev, "same")
    other = make_collection(actor_as(people.other_developer), "same")
    assert other.owner_id == people.other_developer.pk


def test_another_users_collection_is_not_found_and_leaks_nothing(people, dev):
    info = make_collection(dev, "secret")
    fill(dev, "secret", 3)
    intruder = actor_as(people.other_developer)
    for ref in ("secret", str(info.id)):
        with pytest.raises(CollectionNotFoundError) as caught:
            memory.vectors_search(actor=intruder, collection=ref, vector=[0.1] * DIM)
        # Word for word what a collection that does not exist gets.
        assert caught.value.message == f"No collection named '{ref}'."
        with pytest.raises(CollectionNotFoundError):
            memory.vectors_upsert(
                actor=intruder, collection=ref, records=[{"id": "x", "vector": [0.1] * DIM}]
            )
        with pytest.raises(CollectionNotFoundError):
            memory.collection_delete(actor=intruder, collection=ref)
    assert memory.collection_list(actor=intruder) == []
    # memory.manage sees it by id.
    admin = actor_as(people.admin)
    assert memory.collection_get(actor=admin, collection=str(info.id)).record_count == 3
    assert {c.name for c in memory.collection_list(actor=admin, everyone=True)} >= {"secret"}


def test_a_viewer_reads_but_cannot_write(people):
    viewer = actor_as(people.viewer)
    with pytest.raises(PermissionDeniedError):
        make_collection(viewer, "mine")
    with pytest.raises(PermissionDeniedError):
        memory.collection_list(actor=actor_as(people.nobody))
    assert memory.collection_list(actor=viewer) == []


def test_deleting_a_collection_drops_its_index_and_records(dev):
    info = make_collection(dev, "gone")
    fill(dev, "gone", 5)
    memory.collection_delete(actor=dev, collection="gone")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_indexes WHERE indexname LIKE %s", [f"%{info.id.hex}%"]
        )
        assert cursor.fetchone()[0] == 0
        cursor.execute(
            "SELECT count(*) FROM memory_vectorrecord WHERE collection_id = %s", [info.id]
        )
        assert cursor.fetchone()[0] == 0
    assert events_named("memory.VectorsDeleted")[-1].payload["count"] == 5


# --- Records ----------------------------------------------------------------------------


def test_upsert_inserts_then_replaces_by_id(dev):
    make_collection(dev)
    rng = np.random.default_rng(1)
    first = memory.vectors_upsert(
        actor=dev,
        collection="notes",
        records=[
            {"id": "a", "vector": unit(rng), "text": "alpha", "metadata": {"tag": "x"}},
            {"id": "b", "vector": unit(rng)},
        ],
    )
    assert (first.inserted, first.updated, first.ids) == (2, 0, ("a", "b"))
    new = unit(rng)
    again = memory.vectors_upsert(
        actor=dev, collection="notes", records=[{"id": "a", "vector": new, "metadata": {"n": 1}}]
    )
    assert (again.inserted, again.updated) == (0, 1)
    (item,) = memory.vectors_get(actor=dev, collection="notes", ids=["a"], include_vectors=True)
    assert item.metadata == {"n": 1}
    assert item.text == ""
    assert np.allclose(item.vector, new, atol=1e-6)
    info = memory.collection_get(actor=dev, collection="notes")
    assert info.record_count == 2
    assert info.metadata_fields == ("n", "tag")
    stored = events_named("memory.VectorStored")
    assert [e.payload["inserted"] for e in stored[-2:]] == [2, 0]


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"id": "a", "vector": [0.1] * (DIM - 1)}, "records[1].vector"),
        ({"id": "a", "vector": [0.1] * (DIM - 1) + [math.nan]}, "records[1].vector"),
        ({"id": "a", "vector": [0.1] * (DIM - 1) + [math.inf]}, "records[1].vector"),
        ({"id": "a", "vector": [0.1] * (DIM - 1) + [1e39]}, "records[1].vector"),
        ({"id": "a", "vector": [0.1] * (DIM - 1) + ["1"]}, "records[1].vector"),
        ({"id": "a", "vector": [0.1] * (DIM - 1) + [True]}, "records[1].vector"),
        ({"id": "a", "text": ""}, "records[1].text"),
        ({"id": "a", "text": "   "}, "records[1].text"),
        ({"id": "a", "text": "no model here"}, "records[1].vector"),
        ({"id": "", "vector": [0.1] * DIM}, "records[1].id"),
        ({"id": 5, "vector": [0.1] * DIM}, "records[1].id"),
        ({"id": "a", "vector": [0.1] * DIM, "metadata": [1]}, "records[1].metadata"),
        ({"id": "a", "vector": [0.1] * DIM, "metadata": {"x": math.nan}}, "records[1].metadata"),
        ({"id": "a", "vector": [0.1] * DIM, "colour": "red"}, "records[1].colour"),
        ({"id": "ok", "vector": [0.1] * DIM}, "records[1].id"),
    ],
)
def test_one_bad_record_refuses_the_batch_naming_it(dev, record, field):
    make_collection(dev)
    good = {"id": "ok", "vector": [0.1] * DIM}
    with pytest.raises(InvalidInputError) as caught:
        memory.vectors_upsert(actor=dev, collection="notes", records=[good, record])
    assert _field(caught.value) == field
    assert memory.collection_get(actor=dev, collection="notes").record_count == 0
    with pytest.raises(RecordNotFoundError):
        memory.vectors_get(actor=dev, collection="notes", ids=["ok"])


def test_texts_are_embedded_with_the_collections_model(dev):
    memory.collection_create(actor=dev, name="minilm")
    memory.vectors_upsert(
        actor=dev,
        collection="minilm",
        records=[
            {"id": "cat", "text": "The cat sat on the mat and purred."},
            {"id": "tax", "text": "Quarterly tax returns are due in April."},
        ],
    )
    (item,) = memory.vectors_get(actor=dev, collection="minilm", ids=["cat"], include_vectors=True)
    assert len(item.vector) == 384
    assert abs(np.linalg.norm(item.vector) - 1) < 1e-3
    result = memory.vectors_search(
        actor=dev, collection="minilm", query="a kitten on a rug", mode="vector", k=1
    )
    assert [hit.id for hit in result.hits] == ["cat"]


# Committed: embeddings run on providers.api's own thread and database connection.
@pytest.mark.django_db(transaction=True)
def test_an_embedding_model_that_is_down_is_a_503_and_nothing_is_written(dev, request):
    memory.collection_create(actor=dev, name="minilm")
    request.getfixturevalue("embedder_down")
    with pytest.raises(ApplicationError) as caught:
        memory.vectors_upsert(actor=dev, collection="minilm", records=[{"id": "a", "text": "hi"}])
    assert caught.value.status == 503
    assert caught.value.code == "embedding_unavailable"
    with pytest.raises(ApplicationError) as caught:
        memory.vectors_search(actor=dev, collection="minilm", query="hi")
    assert caught.value.status == 503
    assert memory.collection_get(actor=dev, collection="minilm").record_count == 0


def test_delete_by_ids_and_by_filter(dev):
    make_collection(dev)
    fill(dev, "notes", 20, metadata=lambda i: {"parity": "even" if i % 2 == 0 else "odd", "i": i})
    assert memory.vectors_delete(actor=dev, collection="notes", ids=["r1", "r3", "nope"]) == 2
    deleted = memory.vectors_delete(
        actor=dev, collection="notes", filter={"parity": "even", "i": {"$gte": 10}}
    )
    assert deleted == 5
    assert memory.collection_get(actor=dev, collection="notes").record_count == 13
    with pytest.raises(InvalidInputError) as caught:
        memory.vectors_delete(actor=dev, collection="notes")
    assert _field(caught.value) == "ids"
    with pytest.raises(InvalidInputError) as caught:
        memory.vectors_delete(actor=dev, collection="notes", filter={"colour": "red"})
    assert _field(caught.value) == "filter.colour"


# --- Filters ----------------------------------------------------------------------------


def _meta(i: int) -> dict:
    return {
        "kind": ["a", "b", "c"][i % 3],
        "n": i,
        "tags": ["t" + str(i % 4), "all"],
        "title": f"item number {i}",
        **({"rare": True} if i % 10 == 0 else {}),
        "nested": {"level": i % 5},
    }


FILTER_CASES = [
    ({"kind": "a"}, lambda m: m["kind"] == "a"),
    ({"kind": {"$ne": "a"}}, lambda m: m["kind"] != "a"),
    ({"kind": {"$in": ["a", "c"]}}, lambda m: m["kind"] in ("a", "c")),
    ({"kind": {"$nin": ["a", "c"]}}, lambda m: m["kind"] not in ("a", "c")),
    ({"n": {"$gte": 5, "$lt": 12}}, lambda m: 5 <= m["n"] < 12),
    ({"n": {"$gt": 25}}, lambda m: m["n"] > 25),
    ({"tags": {"$contains": "t1"}}, lambda m: "t1" in m["tags"]),
    ({"title": {"$contains": "number 1"}}, lambda m: "number 1" in m["title"]),
    ({"rare": {"$exists": True}}, lambda m: "rare" in m),
    ({"rare": {"$exists": False}}, lambda m: "rare" not in m),
    ({"nested.level": 3}, lambda m: m["nested"]["level"] == 3),
    ({"nested.level": {"$lte": 1}}, lambda m: m["nested"]["level"] <= 1),
    ({"$or": [{"kind": "a"}, {"n": {"$lt": 3}}]}, lambda m: m["kind"] == "a" or m["n"] < 3),
    (
        {"$and": [{"kind": "b"}, {"$not": {"n": {"$gt": 10}}}]},
        lambda m: m["kind"] == "b" and m["n"] <= 10,
    ),
    ({"title": {"$gt": "item number 3"}}, lambda m: m["title"] > "item number 3"),
    # A range on a string field against a number matches nothing rather than failing.
    ({"kind": {"$gt": 3}}, lambda m: False),
]


@pytest.mark.parametrize(("spec", "keep"), FILTER_CASES)
def test_filters_select_exactly_the_matching_records(dev, spec, keep):
    make_collection(dev)
    vectors = fill(dev, "notes", 30, metadata=_meta)
    query = unit(np.random.default_rng(99))
    expected = exact_cosine(vectors, query, 30, keep=lambda key: keep(_meta(int(key[1:]))))
    result = memory.vectors_search(actor=dev, collection="notes", vector=query, k=30, filter=spec)
    assert [hit.id for hit in result.hits] == expected
    assert all(keep(hit.metadata) for hit in result.hits)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"colour": "red"}, "filter.colour"),
        ({"$or": [{"kind": "a"}, {"colour": "red"}]}, "filter.$or[1].colour"),
        ({"kind": {"$like": "a"}}, "filter.kind.$like"),
        ({"$xor": []}, "filter.$xor"),
        ({"$and": []}, "filter.$and"),
        ({"kind": {"$in": []}}, "filter.kind.$in"),
        ({"kind": {"$in": "a"}}, "filter.kind.$in"),
        ({"n": {"$gt": [1]}}, "filter.n.$gt"),
        ({"n": {"$gt": True}}, "filter.n.$gt"),
        ({"rare": {"$exists": "yes"}}, "filter.rare.$exists"),
        ({"kind": {}}, "filter.kind"),
        ({"kind": {"a": 1}}, "filter.kind.a"),
        ({"nested..level": 1}, "filter.nested..level"),
        ([1, 2], "filter"),
    ],
)
def test_bad_filters_are_refused_naming_the_place(dev, spec, field):
    make_collection(dev)
    fill(dev, "notes", 3, metadata=_meta)
    with pytest.raises(InvalidInputError) as caught:
        memory.vectors_search(actor=dev, collection="notes", vector=[0.1] * DIM, filter=spec)
    assert _field(caught.value) == field


def test_a_deeply_nested_filter_is_refused(dev):
    make_collection(dev)
    fill(dev, "notes", 3, metadata=_meta)
    spec = {"kind": "a"}
    for _ in range(12):
        spec = {"$not": spec}
    with pytest.raises(InvalidInputError):
        memory.vectors_search(actor=dev, collection="notes", vector=[0.1] * DIM, filter=spec)


# --- Search plans -----------------------------------------------------------------------


def test_unfiltered_search_reads_the_hnsw_index(dev):
    info = make_collection(dev)
    vectors = fill(dev, "notes", 300)
    query = unit(np.random.default_rng(5))
    result = memory.vectors_search(actor=dev, collection="notes", vector=query, k=10, ef_search=200)
    assert result.vector_plan == "hnsw"
    assert result.ef_search == 200
    found = [hit.id for hit in result.hits]
    assert len(set(found) & set(exact_cosine(vectors, query, 10))) >= 9
    # The query plan really uses the collection's index.
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            f"EXPLAIN SELECT id FROM memory_vectorrecord WHERE collection_id = '{info.id}'::uuid "  # noqa: S608
            f"ORDER BY vector_0::halfvec({DIM}) <=> %s::halfvec({DIM}) LIMIT 10",
            [str(query)],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("SET LOCAL enable_seqscan TO DEFAULT")
    assert f"memory_vec_{info.id.hex}_0" in plan


def test_the_statement_the_api_runs_reads_the_index(dev):
    """The query vector is sent once, as an init plan's value: the walk still uses the
    collection's index."""
    info = make_collection(dev)
    fill(dev, "notes", 300)
    query = unit(np.random.default_rng(26))
    memory.vectors_search(actor=dev, collection="notes", vector=query, k=5)
    with CaptureQueriesContext(connection) as captured:
        memory.vectors_search(actor=dev, collection="notes", vector=query, k=5, ef_search=60)
    [statement] = [q["sql"] for q in captured.captured_queries]
    assert statement.count("[") == 1  # the vector literal, once
    [select] = [part for part in statement.split("; ") if part.startswith("WITH q AS")]
    with connection.cursor() as cursor:
        # 300 rows: left to itself the planner would rather sort them all.
        cursor.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off")
        cursor.execute(f"EXPLAIN {select}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute(
            "SET LOCAL enable_seqscan TO DEFAULT; SET LOCAL enable_bitmapscan TO DEFAULT"
        )
    assert f"Index Scan using memory_vec_{info.id.hex}_0" in plan, plan


def test_ef_search_is_applied_to_the_walk_and_never_caps_k(dev):
    """An HNSW walk yields at most ``hnsw.ef_search`` rows (the statement's SET LOCAL is
    in effect: without the widening this returned 10): the walk is widened to the rows
    asked for, so k=50 at ef_search 10 still returns 50."""
    make_collection(dev)
    vectors = fill(dev, "notes", 400, seed=27)
    query = unit(np.random.default_rng(28))
    result = memory.vectors_search(actor=dev, collection="notes", vector=query, k=50, ef_search=10)
    assert result.vector_plan == "hnsw"
    assert result.ef_search == 10
    assert len(result.hits) == 50
    assert len({hit.id for hit in result.hits} & set(exact_cosine(vectors, query, 50))) >= 45
    # Hybrid and MMR read a wider candidate pool than k: the walk covers it too.
    wide = memory.vectors_search(
        actor=dev, collection="notes", vector=query, k=20, ef_search=5, mmr=True, candidates=80
    )
    assert len(wide.hits) == 20


def test_hits_are_scored_on_the_stored_vectors_not_the_half_precision_index(dev):
    make_collection(dev)
    vectors = fill(dev, "notes", 200, seed=21)
    query = unit(np.random.default_rng(22))
    result = memory.vectors_search(actor=dev, collection="notes", vector=query, k=10)
    assert result.vector_plan == "hnsw"
    # float16 would be off by ~1e-3; the stored float32 vectors give float32 rounding only.
    for hit in result.hits:
        v, q = np.asarray(vectors[hit.id], dtype=np.float32), np.asarray(query, dtype=np.float32)
        cosine = float(v @ q / np.linalg.norm(v) / np.linalg.norm(q))
        assert hit.retrievers["vector"].distance == pytest.approx(1 - cosine, abs=2e-6)
    distances = [hit.retrievers["vector"].distance for hit in result.hits]
    assert distances == sorted(distances)


def test_recall_at_10_on_a_seeded_clustered_set(dev):
    """3,000 vectors in 30 tight clusters: nearest neighbours are close calls, as in the
    benchmark; at ef_search 200 the index must find almost all of the exact top 10."""
    rng = np.random.default_rng(31)
    dim = 32
    make_collection(dev, "clusters", dimension=dim)
    centres = rng.normal(size=(30, dim))
    points = centres[rng.integers(0, 30, size=3000)] + rng.normal(scale=0.35, size=(3000, dim))
    vectors = {f"p{i}": (row / np.linalg.norm(row)).tolist() for i, row in enumerate(points)}
    records = [{"id": key, "vector": vector} for key, vector in vectors.items()]
    for start in range(0, len(records), 1000):
        memory.vectors_upsert(
            actor=dev, collection="clusters", records=records[start : start + 1000]
        )
    found = []
    for _ in range(20):
        query = points[rng.integers(0, 3000)] + rng.normal(scale=0.1, size=dim)
        query = (query / np.linalg.norm(query)).tolist()
        result = memory.vectors_search(
            actor=dev, collection="clusters", vector=query, k=10, ef_search=200
        )
        exact = exact_cosine(vectors, query, 10)
        found.append(len({hit.id for hit in result.hits} & set(exact)) / 10)
    assert np.mean(found) >= 0.98


def test_a_single_precision_index_still_serves_its_collection(dev):
    """Collections created before half-precision indexes keep theirs until rebuilt."""
    info = make_collection(dev, "legacy", build_index=False)
    Collection.objects.filter(id=info.id).update(index_type="vector")
    vector_access.collection_forget()
    memory.collection_reindex(actor=dev, collection="legacy")
    vectors = fill(dev, "legacy", 200, seed=23, metadata=lambda i: {"group": i % 2})
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s",
            [f"memory_vec_{info.id.hex}_0"],
        )
        assert "vector_cosine_ops" in cursor.fetchone()[0]
    # A value beyond half precision's range is fine in a single-precision collection.
    memory.vectors_upsert(
        actor=dev, collection="legacy", records=[{"id": "big", "vector": [1e5] * DIM}]
    )
    query = unit(np.random.default_rng(24))
    result = memory.vectors_search(actor=dev, collection="legacy", vector=query, k=5)
    assert result.vector_plan == "hnsw"
    vectors["big"] = [1e5] * DIM
    assert [hit.id for hit in result.hits] == exact_cosine(vectors, query, 5)


def test_values_beyond_half_precision_are_a_400_naming_the_field(dev):
    make_collection(dev)
    fill(dev, "notes", 5)
    with pytest.raises(InvalidInputError) as caught:
        memory.vectors_upsert(
            actor=dev,
            collection="notes",
            records=[{"id": "ok", "vector": [0.1] * DIM}, {"id": "x", "vector": [7e4] * DIM}],
        )
    assert _field(caught.value) == "records[1].vector"
    assert memory.collection_get(actor=dev, collection="notes").record_count == 5
    with pytest.raises(InvalidInputError) as caught:
        memory.vectors_search(actor=dev, collection="notes", vector=[-7e4] * DIM)
    assert _field(caught.value) == "vector"
    # 65504, the largest half-precision value, is taken.
    memory.vectors_upsert(
        actor=dev, collection="notes", records=[{"id": "edge", "vector": [65504.0] * DIM}]
    )


def test_a_search_is_one_statement_once_the_collection_is_cached(dev):
    make_collection(dev)
    fill(dev, "notes", 50, metadata=lambda i: {"group": i % 2})
    query = unit(np.random.default_rng(25))
    memory.vectors_search(actor=dev, collection="notes", vector=query, k=5)
    memory.vectors_search(actor=dev, collection="notes", vector=query, k=5, filter={"group": 1})
    with CaptureQueriesContext(connection) as unfiltered:
        result = memory.vectors_search(actor=dev, collection="notes", vector=query, k=5)
    assert len(result.hits) == 5
    assert len(unfiltered.captured_queries) == 1
    with CaptureQueriesContext(connection) as filtered:
        memory.vectors_search(actor=dev, collection="notes", vector=query, k=5, filter={"group": 1})
    assert len(filtered.captured_queries) == 1


def test_a_selective_filter_is_answered_exactly(dev):
    make_collection(dev)
    vectors = fill(dev, "notes", 300, metadata=lambda i: {"group": i % 50})
    query = unit(np.random.default_rng(6))
    result = memory.vectors_search(
        actor=dev, collection="notes", vector=query, k=10, filter={"group": 7}
    )
    assert result.vector_plan == "exact"
    keep = {f"r{i}" for i in range(300) if i % 50 == 7}
    assert [hit.id for hit in result.hits] == exact_cosine(
        vectors, query, 10, keep=keep.__contains__
    )


def test_a_broad_filter_walks_the_index_and_still_returns_k(dev, monkeypatch):
    monkeypatch.setattr(vector_reads, "EXACT_BELOW", 50)
    make_collection(dev)
    vectors = fill(dev, "notes", 1000, metadata=lambda i: {"decile": i % 10})
    rng = np.random.default_rng(8)
    for _ in range(5):
        query = unit(rng)
        result = memory.vectors_search(
            actor=dev, collection="notes", vector=query, k=10, filter={"decile": 3}, ef_search=40
        )
        assert result.vector_plan in ("hnsw", "exact")
        assert len(result.hits) == 10
        assert all(hit.metadata["decile"] == 3 for hit in result.hits)
        expected = exact_cosine(vectors, query, 10, keep=lambda key: int(key[1:]) % 10 == 3)
        assert len({hit.id for hit in result.hits} & set(expected)) >= 8


def test_scores_follow_the_distance(dev):
    rng = np.random.default_rng(11)
    for distance in ("cosine", "l2", "ip"):
        make_collection(dev, f"d-{distance}", distance=distance)
        vectors = fill(dev, f"d-{distance}", 30, seed=3)
        query = unit(rng)
        hit = memory.vectors_search(actor=dev, collection=f"d-{distance}", vector=query, k=1).hits[
            0
        ]
        v, q = np.asarray(vectors[hit.id]), np.asarray(query)
        expected = {"cosine": float(v @ q), "l2": -float(np.linalg.norm(v - q)), "ip": float(v @ q)}
        assert hit.score == pytest.approx(expected[distance], abs=1e-4)
        assert hit.retrievers["vector"].rank == 1


# --- Hybrid -----------------------------------------------------------------------------


TEXTS = {
    "r0": "The quarterly budget review is on Thursday",
    "r1": "Budget approval needs the finance director",
    "r2": "Our cat likes sleeping in the sun",
    "r3": "Sunny weather all week in Lisbon",
    "r4": "The finance team moved to the third floor",
}


def test_hybrid_fuses_both_rankings_and_reports_each(dev):
    make_collection(dev)
    vectors = fill(dev, "notes", 5, texts=lambda i: TEXTS[f"r{i}"])
    query_vector = vectors["r2"]  # nearest by vector: r2; by words: r0, r1
    result = memory.vectors_search(
        actor=dev, collection="notes", query="budget finance", vector=query_vector, k=5
    )
    assert result.mode == "hybrid"
    by_id = {hit.id: hit for hit in result.hits}
    assert by_id["r2"].retrievers["vector"].rank == 1
    assert "text" not in by_id["r2"].retrievers
    assert by_id["r1"].retrievers["text"].rank in (1, 2)
    for hit in result.hits:
        expected = sum(1 / (60 + s.rank) for s in hit.retrievers.values())
        assert hit.rrf == pytest.approx(expected)
        assert hit.score == pytest.approx(expected)
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)
    # Weights move the balance.
    text_heavy = memory.vectors_search(
        actor=dev,
        collection="notes",
        query="budget finance",
        vector=query_vector,
        k=1,
        weights={"vector": 0.1, "text": 5},
    )
    assert text_heavy.hits[0].id in ("r0", "r1")
    vector_heavy = memory.vectors_search(
        actor=dev,
        collection="notes",
        query="budget finance",
        vector=query_vector,
        k=1,
        weights={"vector": 5, "text": 0.1},
    )
    assert vector_heavy.hits[0].id == "r2"


def test_text_mode_ranks_by_full_text_only(dev):
    make_collection(dev)
    fill(dev, "notes", 5, texts=lambda i: TEXTS[f"r{i}"])
    result = memory.vectors_search(
        actor=dev, collection="notes", query="finance budget", mode="text"
    )
    assert {hit.id for hit in result.hits} == {"r0", "r1", "r4"}
    assert result.hits[0].id == "r1"  # both words
    assert result.vector_plan == "none"
    assert result.ef_search is None


def test_mmr_prefers_diverse_hits(dev):
    make_collection(dev)
    base = np.zeros(DIM)
    base[0] = 1
    near = [base + np.eye(DIM)[1] * 0.01 * i for i in range(5)]
    other = np.eye(DIM)[0] * 0.7 + np.eye(DIM)[2] * 0.7
    records = [{"id": f"dup{i}", "vector": v.tolist()} for i, v in enumerate(near)]
    records.append({"id": "different", "vector": other.tolist()})
    memory.vectors_upsert(actor=dev, collection="notes", records=records)
    plain = memory.vectors_search(actor=dev, collection="notes", vector=base.tolist(), k=2)
    assert "different" not in {h.id for h in plain.hits}
    diverse = memory.vectors_search(
        actor=dev, collection="notes", vector=base.tolist(), k=2, mmr=True, mmr_lambda=0.3
    )
    assert "different" in {h.id for h in diverse.hits}
    assert all(h.mmr is not None for h in diverse.hits)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "   "}, "query"),
        ({}, "query"),
        ({"mode": "text", "vector": [0.1] * DIM}, "query"),
        ({"vector": [0.1] * (DIM + 1)}, "vector"),
        ({"vector": [math.nan] * DIM}, "vector"),
        ({"vector": [0.1] * DIM, "k": 0}, "k"),
        ({"vector": [0.1] * DIM, "k": 1001}, "k"),
        ({"vector": [0.1] * DIM, "ef_search": 0}, "ef_search"),
        ({"vector": [0.1] * DIM, "mode": "graph"}, "mode"),
        ({"query": "x", "vector": [0.1] * DIM, "weights": {"vector": -1}}, "weights.vector"),
        ({"query": "x", "vector": [0.1] * DIM, "weights": {"graph": 1}}, "weights.graph"),
        ({"vector": [0.1] * DIM, "mmr": True, "mmr_lambda": 2}, "mmr_lambda"),
        ({"query": "no model to embed with", "mode": "vector"}, "vector"),
    ],
)
def test_bad_searches_are_refused_naming_the_field(dev, query, field):
    make_collection(dev)
    fill(dev, "notes", 3)
    with pytest.raises(InvalidInputError) as caught:
        memory.vectors_search(actor=dev, collection="notes", **query)
    assert _field(caught.value) == field


def test_an_unknown_collection_is_not_found(dev):
    with pytest.raises(CollectionNotFoundError) as caught:
        memory.vectors_search(actor=dev, collection="nope", vector=[0.1] * DIM)
    assert caught.value.status == 404
    assert _field(caught.value) == "collection"


# --- Settings cached per process ----------------------------------------------------------


def test_a_field_another_process_added_is_found_past_the_cache(dev):
    from lumina.memory.models.vectors import Collection, VectorRecord

    info = make_collection(dev)
    fill(dev, "notes", 3, metadata=lambda i: {"n": i})
    memory.vectors_search(actor=dev, collection="notes", vector=[0.1] * DIM)  # now cached
    # Another process writes a record with a new field (this process's cache is not told).
    Collection.objects.filter(pk=info.id).update(metadata_fields=["colour", "n"])
    VectorRecord.objects.create(
        collection_id=info.id, external_id="red", vector_0=[0.1] * DIM, metadata={"colour": "red"}
    )
    result = memory.vectors_search(
        actor=dev, collection="notes", vector=[0.1] * DIM, filter={"colour": "red"}
    )
    assert [hit.id for hit in result.hits] == ["red"]


def test_a_slot_switched_by_another_process_is_never_searched_stale(dev):
    from lumina.memory.models.vectors import Collection, VectorRecord

    info = make_collection(dev)
    fill(dev, "notes", 5)
    query = unit(np.random.default_rng(3))
    before = memory.vectors_search(actor=dev, collection="notes", vector=query, k=1)
    assert before.hits
    # Another process finished a re-embedding: the other slot is active, and only "r4"
    # has a vector there.
    VectorRecord.objects.filter(collection_id=info.id, external_id="r4").update(vector_1=query)
    Collection.objects.filter(pk=info.id).update(active_slot=1)
    after = memory.vectors_search(actor=dev, collection="notes", vector=query, k=3)
    assert [hit.id for hit in after.hits] == ["r4"]
    assert after.hits[0].retrievers["vector"].distance == pytest.approx(0, abs=1e-6)
