"""/api/v1/vectors over HTTP: the JSON shapes, bad input as 4xx naming the field, and
callers of every role reaching for collections that are not theirs."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest

from tests.memory.conftest import client_as
from tests.security.rbac_support import assert_error

pytestmark = pytest.mark.django_db

BASE = "/api/v1/vectors/collections"
DIM = 4


def _post(client, url, body):
    return client.post(url, body, format="json")


@pytest.fixture
def owner(people):
    return people.developer


@pytest.fixture
def owned(owner):
    """A developer's collection with three records; returns (client, collection json)."""
    client = client_as(owner)
    response = _post(
        client, BASE, {"name": "notes", "embedding_model": "", "dimension": DIM, "distance": "l2"}
    )
    assert response.status_code == 201, response.content
    records = [
        {"id": "a", "vector": [1, 0, 0, 0], "text": "apples and pears", "metadata": {"k": 1}},
        {"id": "b", "vector": [0, 1, 0, 0], "text": "pears only", "metadata": {"k": 2}},
        {"id": "c", "vector": [0, 0, 1, 0], "text": "cherries", "metadata": {"k": 3}},
    ]
    upserted = _post(client, f"{BASE}/notes/records", {"records": records})
    assert upserted.status_code == 200, upserted.content
    return client, response.json()


def test_the_whole_round_trip(owned):
    client, collection = owned
    assert collection["dimension"] == DIM
    assert collection["distance"] == "l2"
    listing = client.get(BASE).json()
    assert [c["name"] for c in listing["results"]] == ["notes"]
    detail = client.get(f"{BASE}/notes").json()
    assert (detail["record_count"], detail["metadata_fields"]) == (3, ["k"])
    assert client.get(f"{BASE}/{collection['id']}").json()["name"] == "notes"

    search = _post(client, f"{BASE}/notes/search", {"vector": [0.9, 0.1, 0, 0], "k": 2}).json()
    assert [hit["id"] for hit in search["hits"]] == ["a", "b"]
    first = search["hits"][0]
    assert first["retrievers"]["vector"]["rank"] == 1
    assert first["retrievers"]["vector"]["distance"] == pytest.approx(np.sqrt(0.02), abs=1e-5)
    assert first["metadata"] == {"k": 1}

    hybrid = _post(
        client,
        f"{BASE}/notes/search",
        {"query": "pears", "vector": [0, 0, 1, 0], "k": 3, "weights": {"text": 2}},
    ).json()
    assert hybrid["mode"] == "hybrid"
    assert {"vector", "text"} <= {name for hit in hybrid["hits"] for name in hit["retrievers"]}

    filtered = _post(
        client, f"{BASE}/notes/search", {"vector": [1, 0, 0, 0], "filter": {"k": {"$gte": 2}}}
    ).json()
    assert [hit["id"] for hit in filtered["hits"]] == ["b", "c"]

    record = client.get(f"{BASE}/notes/records/a").json()
    assert record["vector"] == [1.0, 0.0, 0.0, 0.0]
    fetched = _post(client, f"{BASE}/notes/fetch", {"ids": ["c", "a"]}).json()
    assert [item["id"] for item in fetched] == ["c", "a"]

    assert _post(client, f"{BASE}/notes/delete", {"filter": {"k": 3}}).json() == {"deleted": 1}
    assert client.delete(f"{BASE}/notes/records/b").status_code == 204
    assert client.get(f"{BASE}/notes").json()["record_count"] == 1
    patched = client.patch(f"{BASE}/notes", {"default_ef_search": 64}, format="json").json()
    assert patched["default_ef_search"] == 64
    assert _post(client, f"{BASE}/notes/reindex", {}).status_code == 200
    assert client.delete(f"{BASE}/notes").status_code == 204
    assert_error(client.get(f"{BASE}/notes"), 404, "collection_not_found", "collection")


# --- Bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"records": [{"id": "x", "vector": [1, 2, 3]}]}, "records[0].vector"),
        ({"records": [{"id": "x", "vector": [1, 2, 3, "NaN"]}]}, "records[0].vector"),
        ({"records": [{"id": "x", "vector": [1, 2, 3, 1e309]}]}, None),
        ({"records": [{"id": "x", "text": ""}]}, "records[0].text"),
        (
            {"records": [{"id": "x", "vector": [1, 0, 0, 0], "metadata": "m"}]},
            "records[0].metadata",
        ),
        ({"records": []}, "records"),
        ({"records": "nope"}, "records"),
        ({}, "records"),
    ],
)
def test_bad_records_are_400_naming_the_field_and_nothing_is_written(owned, body, field):
    client, _ = owned
    response = client.generic(
        "POST", f"{BASE}/notes/records", json.dumps(body), content_type="application/json"
    )
    assert_error(response, 400, field=field)
    assert client.get(f"{BASE}/notes").json()["record_count"] == 3


def test_nan_and_infinity_tokens_are_refused_by_the_parser(owned):
    client, _ = owned
    for token in ("NaN", "Infinity", "-Infinity"):
        raw = f'{{"records": [{{"id": "x", "vector": [1, 0, 0, {token}]}}]}}'
        response = client.generic(
            "POST", f"{BASE}/notes/records", raw, content_type="application/json"
        )
        assert response.status_code == 400, token
    assert client.get(f"{BASE}/notes").json()["record_count"] == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"vector": [1, 0]}, "vector"),
        ({"vector": [1, 0, 0, 0], "filter": {"colour": "red"}}, "filter.colour"),
        ({"vector": [1, 0, 0, 0], "filter": {"k": {"$near": 1}}}, "filter.k.$near"),
        ({"query": ""}, "query"),
        ({"query": "pears", "mode": "sideways"}, "mode"),
        ({"vector": [1, 0, 0, 0], "k": 0}, "k"),
        ({"vector": [1, 0, 0, 0], "k": "ten"}, "k"),
        ({"vector": [1, 0, 0, 0], "ef_search": 5000}, "ef_search"),
        ({"query": "pears", "mode": "vector"}, "vector"),
    ],
)
def test_bad_searches_are_400_naming_the_field(owned, body, field):
    client, _ = owned
    assert_error(_post(client, f"{BASE}/notes/search", body), 400, field=field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "has space", "embedding_model": "", "dimension": 4}, "name"),
        ({"name": "x", "embedding_model": "", "dimension": 0}, "dimension"),
        ({"name": "x", "embedding_model": "", "dimension": 4, "distance": "hamming"}, "distance"),
        ({"name": "x", "dimension": 512}, "dimension"),
        ({"name": "x", "embedding_model": ""}, "dimension"),
    ],
)
def test_bad_collections_are_400_naming_the_field(people, body, field):
    assert_error(_post(client_as(people.developer), BASE, body), 400, field=field)


def test_a_duplicate_name_is_409(owned):
    client, _ = owned
    body = {"name": "notes", "embedding_model": "", "dimension": DIM}
    assert_error(_post(client, BASE, body), 409, field="name")


def test_unknown_collections_and_records_are_404(owned):
    client, _ = owned
    assert_error(client.get(f"{BASE}/nope"), 404, "collection_not_found", "collection")
    assert_error(_post(client, f"{BASE}/nope/search", {"vector": [1, 0, 0, 0]}), 404)
    assert_error(client.get(f"{BASE}/{uuid.uuid4()}"), 404)
    assert_error(client.get(f"{BASE}/notes/records/zzz"), 404, "record_not_found", "id")
    assert_error(_post(client, f"{BASE}/notes/fetch", {"ids": ["a", "zzz"]}), 404, field="id")


@pytest.mark.django_db(transaction=True)
def test_an_embedder_that_is_down_is_503_and_nothing_is_written(people, request):
    client = client_as(people.developer)
    assert _post(client, BASE, {"name": "minilm"}).status_code == 201
    request.getfixturevalue("embedder_down")
    response = _post(client, f"{BASE}/minilm/records", {"records": [{"text": "hello"}]})
    assert_error(response, 503, "embedding_unavailable", "embedding")
    assert_error(_post(client, f"{BASE}/minilm/search", {"query": "hello"}), 503)
    assert client.get(f"{BASE}/minilm").json()["record_count"] == 0


# --- Attacks: other people's collections --------------------------------------------------


READS = [
    ("get", "", None),
    ("post", "/search", {"vector": [1, 0, 0, 0]}),
    ("get", "/records/a", None),
    ("post", "/fetch", {"ids": ["a"]}),
]
WRITES = [
    ("patch", "", {"description": "mine now"}),
    ("post", "/records", {"records": [{"id": "evil", "vector": [1, 1, 1, 1]}]}),
    ("post", "/delete", {"ids": ["a"]}),
    ("post", "/delete", {"filter": {"k": 1}}),
    ("delete", "/records/a", None),
    ("post", "/reindex", {}),
    ("delete", "", None),
]


def _call(client, method, url, body):
    if body is None:
        return getattr(client, method)(url)
    return getattr(client, method)(url, body, format="json")


@pytest.mark.parametrize("who", ["nobody", "staff", "viewer", "other_developer"])
def test_no_one_else_reads_or_changes_a_collection(owned, people, who):
    _, collection = owned
    intruder = client_as(getattr(people, who))
    for ref in (collection["id"], "notes"):
        for method, suffix, body in READS + WRITES:
            response = _call(intruder, method, f"{BASE}/{ref}{suffix}", body)
            # Without memory.read/write: 403 before anything is looked up. With it:
            # 404, word for word what a collection that does not exist gets.
            assert response.status_code in (403, 404), (who, method, suffix, response.content)
            if response.status_code == 404:
                assert response.json()["error"]["message"] == f"No collection named '{ref}'."
            assert "apples" not in response.content.decode()
    # Nothing changed, and nothing shows up in their listings.
    owner_client, _ = owned
    detail = owner_client.get(f"{BASE}/notes").json()
    assert (detail["record_count"], detail["description"]) == (3, "")
    listing = intruder.get(BASE)
    if listing.status_code == 200:
        assert listing.json()["count"] == 0
    assert intruder.get(BASE, {"everyone": "true"}).status_code == 403


def test_a_viewer_cannot_create_or_write_even_its_own(people):
    viewer = client_as(people.viewer)
    body = {"name": "mine", "embedding_model": "", "dimension": DIM}
    assert_error(_post(viewer, BASE, body), 403)


def test_an_admin_manages_anyones_collection_through_memory_manage(owned, people):
    _, collection = owned
    admin = client_as(people.admin)
    url = f"{BASE}/{collection['id']}"
    assert admin.get(url).json()["record_count"] == 3
    assert _post(admin, f"{url}/search", {"vector": [1, 0, 0, 0], "k": 1}).json()["hits"]
    everyone = admin.get(BASE, {"everyone": "true"}).json()
    assert collection["id"] in {c["id"] for c in everyone["results"]}
    # By name, an admin reaches only its own collections.
    assert admin.get(f"{BASE}/notes").status_code == 404


def test_a_token_scoped_to_read_cannot_write(owned, owner):
    from rest_framework.test import APIClient

    from lumina.security.services.tokens import token_create
    from tests.memory.conftest import SYSTEM

    issued = token_create(user_id=owner.pk, actor=SYSTEM, scopes=["memory.read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    assert client.get(f"{BASE}/notes").status_code == 200
    response = _post(client, f"{BASE}/notes/records", {"records": [{"vector": [1, 1, 1, 1]}]})
    assert_error(response, 403)
    assert client.delete(f"{BASE}/notes").status_code == 403


def test_nul_characters_are_400_never_a_server_error(owned):
    client, _ = owned
    cases = [
        (f"{BASE}/notes/search", {"vector": [1, 0, 0, 0], "filter": {"k": "a\x00"}}, "filter.k"),
        (f"{BASE}/notes/search", {"vector": [1, 0, 0, 0], "filter": {"k\x00": 1}}, "filter"),
        (f"{BASE}/notes/search", {"query": "pe\x00ars"}, "query"),
        (f"{BASE}/notes/delete", {"filter": {"k": {"$in": ["\x00"]}}}, "filter.k.$in"),
        (
            f"{BASE}/notes/search",
            {"vector": [1, 0, 0, 0], "filter": {"k": {"$gt": "\x00"}}},
            "filter.k.$gt",
        ),
        (f"{BASE}/notes/records", {"records": [{"id": "a\x00", "vector": [1, 0, 0, 0]}]}, None),
    ]
    for url, body, field in cases:
        assert_error(_post(client, url, body), 400, field=field)
    assert client.get(f"{BASE}/notes/records/a%00").status_code in (400, 404)
