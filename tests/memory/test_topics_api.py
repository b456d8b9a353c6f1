"""/api/v1/topics: extraction, listing, detail, the graph; bad input; other people's topics."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lumina.kernel.models import OutboxEvent
from lumina.memory.models.topics import Topic, TopicMembership
from lumina.memory.services.graph import graph_index_records
from lumina.memory.services.topics import topics_assign
from tests.memory.conftest import client_as
from tests.memory.graph_support import HISTORY, by_text, store_history

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(people):
    records = store_history(people.developer.id, announce=False)
    graph_index_records(record_ids=[r.id for r in records], llm=False)
    return records


def extract(client, **body):
    return client.post("/api/v1/topics/extract", body, format="json")


def test_extracting_a_users_topics_groups_the_themes_and_publishes_the_event(
    people, history, developer_client
):
    response = extract(developer_client, scope="user")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["record_count"] == len(HISTORY)
    leaves = [t for t in body["topics"] if t["level"] == 0]
    assert sum(t["size"] for t in leaves) == len(HISTORY)
    # The pottery turns share a leaf whose keywords say so.
    members = {
        t["id"]: {
            str(m)
            for m in TopicMembership.objects.filter(topic_id=t["id"]).values_list(
                "record_id", flat=True
            )
        }
        for t in leaves
    }
    pottery = {str(by_text(history, f).id) for f in ("kiln cracked", "three mugs")}
    holding = [t for t in leaves if pottery <= members[t["id"]]]
    assert holding, "the pottery turns share a topic"
    assert {"pottery", "kiln", "glaze", "glazed", "bowl", "clay", "studio"} & set(
        holding[0]["keywords"]
    )
    event = OutboxEvent.objects.get(name="memory.TopicsExtracted")
    assert event.payload["record_count"] == len(HISTORY)
    assert event.payload["scope"] == "user"
    assert len(event.payload["topic_ids"]) == len(body["topics"])
    assert "Ana" not in str(event.payload)  # ids and counts, never the text

    listed = developer_client.get("/api/v1/topics").json()
    assert [t["id"] for t in listed["topics"]] == [t["id"] for t in body["topics"]]
    detail = developer_client.get(f"/api/v1/topics/{holding[0]['id']}?limit=50").json()
    assert pottery <= {m["record_id"] for m in detail["members"]}
    sims = [m["similarity"] for m in detail["members"]]
    assert sims == sorted(sims, reverse=True)


def test_extracting_again_replaces_the_scopes_topics(people, history, developer_client):
    first = {t["id"] for t in extract(developer_client, scope="user").json()["topics"]}
    second = {t["id"] for t in extract(developer_client, scope="user").json()["topics"]}
    assert not first & second
    assert set(Topic.objects.filter(owner_id=people.developer.id).values_list("id", flat=True)) == {
        uuid.UUID(i) for i in second
    }


def test_session_topics_and_new_records_joining_them(people, history, developer_client):
    body = extract(developer_client, scope="session", key="s2").json()
    assert body["record_count"] == 5
    assert all(t["scope_key"] == "s2" for t in body["topics"])
    # Three more turns of s2 arrive: each joins the nearest leaf (and the scope, grown by
    # over a third, is extracted again).
    extra = store_history(
        people.developer.id,
        [
            ("s2", "Melanie", "The kiln at the pottery studio broke again."),
            ("s2", "Melanie", "I ran twelve miles along the river for marathon training."),
        ],
        announce=False,
    )
    assert topics_assign(record_ids=[r.id for r in extra]) == 2
    after = developer_client.get("/api/v1/topics?scope=session&key=s2").json()["topics"]
    leaves = [t for t in after if t["level"] == 0]
    assert sum(t["size"] for t in leaves) == 7
    # A user-scope extraction does not exist: nothing is assigned there.
    assert not Topic.objects.filter(owner_id=people.developer.id, scope="user").exists()


def _vector_reads(queries) -> list[str]:
    """The statements among ``queries`` that read records' embeddings."""
    return [
        q["sql"]
        for q in queries
        if "memory_memoryrecord" in q["sql"] and '"embedding"' in q["sql"].split(" FROM ")[0]
    ]


def test_records_of_owners_without_topics_are_not_read_at_all(people, history, developer_client):
    # An import's handler names the owners: one query about their topics, no record read.
    (turn,) = store_history(people.developer.id, [("s5", "Mel", "Kiln again.")], announce=False)
    with CaptureQueriesContext(connection) as queries:
        assert topics_assign(record_ids=[turn.id], owner_ids=[people.developer.id]) == 0
    assert len(queries.captured_queries) == 1
    assert "memory_memoryrecord" not in queries.captured_queries[0]["sql"]
    # Once the owner has topics, the same call reads the record and assigns it.
    extract(developer_client, scope="session", key="s2")
    (kiln,) = store_history(
        people.developer.id,
        [("s2", "Mel", "The kiln at the pottery studio broke again.")],
        announce=False,
    )
    assert topics_assign(record_ids=[kiln.id], owner_ids=[people.developer.id]) == 1


def test_new_records_read_no_vectors_unless_one_of_their_scopes_has_topics(
    people, history, developer_client
):
    extract(developer_client, scope="session", key="s2")
    s2, s5 = store_history(
        people.developer.id,
        [
            ("s2", "Melanie", "The kiln at the pottery studio broke again."),
            ("s5", "Melanie", "The kiln at the pottery studio broke once more."),
        ],
        announce=False,
    )
    with CaptureQueriesContext(connection) as queries:
        assert topics_assign(record_ids=[s5.id]) == 0
    assert not _vector_reads(queries.captured_queries)
    with CaptureQueriesContext(connection) as queries:
        assert topics_assign(record_ids=[s2.id, s5.id]) == 1
    reads = _vector_reads(queries.captured_queries)
    assert reads, "the record of the scope with topics is read with its vector"
    read = set()
    with connection.cursor() as cursor:
        for sql in reads:
            cursor.execute(sql)
            read |= {row[0] for row in cursor.fetchall()}
    assert read == {s2.id}  # s5's session has no topics: its vector is never read
    assert TopicMembership.objects.filter(record_id=s2.id).count() == 1


def test_graph_for_visualization_with_provenance(people, history, developer_client):
    response = developer_client.get("/api/v1/topics/graph?limit=50")
    assert response.status_code == 200
    graph = response.json()
    names = {n["id"]: n["name"] for n in graph["nodes"]}
    assert {"Ana", "Lisbon", "Caroline", "Melanie"} <= set(names.values())
    family = [
        e
        for e in graph["edges"]
        if e["kind"] == "family"
        and names[e["source"]] == "Caroline"
        and names[e["target"]] == "Ana"
    ]
    assert len(family) == 1
    assert family[0]["provenance"] == [str(by_text(history, "My sister Ana").id)]
    # Around one entity, one relation kind, one session.
    around = developer_client.get("/api/v1/topics/graph?entity=lisbon&relation=lives_in").json()
    assert {e["kind"] for e in around["edges"]} == {"lives_in"}
    assert "Lisbon" in {n["name"] for n in around["nodes"]}
    session = developer_client.get("/api/v1/topics/graph?session_id=s2").json()
    assert "Ana" not in {n["name"] for n in session["nodes"]}
    assert "Berlin" in {n["name"] for n in session["nodes"]}
    small = developer_client.get("/api/v1/topics/graph?limit=2").json()
    assert len(small["nodes"]) == 2
    assert small["truncated"] is True


# Fixed, not random: pytest-xdist workers must collect the same test ids.
UNKNOWN_TOPIC = uuid.UUID(int=1)


@pytest.mark.parametrize(
    ("method", "url", "body", "field"),
    [
        ("post", "/api/v1/topics/extract", {"scope": "galaxy"}, "scope"),
        ("post", "/api/v1/topics/extract", {"scope": "session"}, "key"),
        ("post", "/api/v1/topics/extract", {"scope": "user", "key": "x"}, "key"),
        ("post", "/api/v1/topics/extract", {"scope": "session", "key": 5}, "key"),
        ("post", "/api/v1/topics/extract", {"scope": "collection", "key": "nope"}, "collection"),
        ("post", "/api/v1/topics/extract", {"scope": "user", "user_id": "me"}, "user_id"),
        ("get", "/api/v1/topics?scope=agent", None, "key"),
        ("get", "/api/v1/topics/graph?limit=0", None, "limit"),
        ("get", "/api/v1/topics/graph?limit=abc", None, "limit"),
        ("get", "/api/v1/topics/graph?min_weight=-1", None, "min_weight"),
        ("get", "/api/v1/topics/graph?relation=hates", None, "relation"),
        ("get", f"/api/v1/topics/{UNKNOWN_TOPIC}?limit=0", None, "limit"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(developer_client, method, url, body, field):
    response = getattr(developer_client, method)(url, body, format="json")
    assert 400 <= response.status_code < 500, response.content
    assert field in response.json()["error"]["fields"], response.json()


def test_an_unknown_topic_is_a_404_naming_it(developer_client):
    response = developer_client.get(f"/api/v1/topics/{uuid.uuid4()}")
    assert response.status_code == 404
    assert "topic_id" in response.json()["error"]["fields"]


def test_nobody_reads_or_extracts_another_users_topics_without_manage(
    people, history, developer_client
):
    owner = people.developer.id
    topic_id = extract(developer_client, scope="user").json()["topics"][0]["id"]
    before = Topic.objects.filter(owner_id=owner).count()
    assert before > 0
    intruders = {
        "nobody": people.nobody,
        "viewer": people.viewer,
        "other developer": people.other_developer,
        "staff": people.staff,
    }
    for label, user in intruders.items():
        client = client_as(user)
        detail = client.get(f"/api/v1/topics/{topic_id}")
        # Without memory.read: 403; with it: the topic is as absent as a missing one.
        assert detail.status_code in (403, 404), label
        assert "keywords" not in detail.json(), label
        for url in (
            f"/api/v1/topics?user_id={owner}",
            f"/api/v1/topics/graph?user_id={owner}",
        ):
            response = client.get(url)
            assert response.status_code == 403, (label, url)
            assert "Ana" not in response.content.decode()
        response = extract(client, scope="user", user_id=str(owner))
        assert response.status_code == 403, label
        # Their own (empty) graph and topics say nothing of the developer's.
        own = client.get("/api/v1/topics/graph")
        if own.status_code == 200:
            assert own.json()["nodes"] == []
    assert Topic.objects.filter(owner_id=owner).count() == before
    # The viewer may read their own topics but not extract (memory.write).
    assert client_as(people.viewer).get("/api/v1/topics").status_code == 200
    assert extract(client_as(people.viewer), scope="user").status_code == 403


def test_an_admin_with_manage_reads_and_extracts_for_another_user(people, history):
    owner = people.developer.id
    admin = client_as(people.admin)
    response = extract(admin, scope="user", user_id=str(owner))
    assert response.status_code == 201
    topic_id = response.json()["topics"][0]["id"]
    assert admin.get(f"/api/v1/topics/{topic_id}").status_code == 200
    graph = admin.get(f"/api/v1/topics/graph?user_id={owner}").json()
    assert "Ana" in {n["name"] for n in graph["nodes"]}
    assert Topic.objects.filter(owner_id=owner).exists()
    assert not Topic.objects.filter(owner_id=people.admin.id).exists()
