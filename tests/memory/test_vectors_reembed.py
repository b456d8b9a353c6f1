"""Re-embedding a collection into another model (another dimension) in resumable batches,
while searches keep working; the CLI's reembed, reindex and stats.

The new model is an OpenAI-compatible loopback upstream answering 8-dimensional
embeddings. Committed transactions: embeddings run on providers.api's own thread and
database connection, which sees only committed rows.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from lumina.memory import api as memory
from lumina.memory.errors import InvalidInputError
from lumina.memory.models.vectors import Collection
from tests.memory.conftest import actor_as
from tests.providers.conftest import openai_upstream  # noqa: F401 (a fixture)
from tests.providers.factories import DeploymentFactory, ProviderFactory
from tests.security.rbac_support import events_named

pytestmark = pytest.mark.django_db(transaction=True)

TEXTS = [
    "The ferry to Tangier leaves at nine",
    "Pack sunscreen and a hat",
    "Book the hotel near the harbour",
    "Our flight lands in Malaga on Friday",
    "Remember the passport renewal",
    "The museum is closed on Mondays",
    "Dinner reservation at eight",
    "Exchange some money for dirhams",
    "Charge the camera batteries",
    "Check the weather forecast",
]


@pytest.fixture
def small_model(openai_upstream):  # noqa: F811
    provider = ProviderFactory(kind="openai", base_url=openai_upstream.url, api_key="sk-test")
    DeploymentFactory(provider=provider, name="tiny-embed", capabilities=["embeddings"])
    return "tiny-embed"


def _index_names(collection_id) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE indexname LIKE %s", [f"%{collection_id.hex}%"]
        )
        return {row[0] for row in cursor.fetchall()}


def test_reembed_moves_to_a_new_dimension_in_resumable_batches(people, small_model):
    dev = actor_as(people.developer)
    info = memory.collection_create(actor=dev, name="trip")
    memory.vectors_upsert(
        actor=dev,
        collection="trip",
        records=[{"id": f"t{i}", "text": text} for i, text in enumerate(TEXTS)],
    )
    seen = []
    partial = memory.collection_reembed(
        actor=dev,
        collection="trip",
        model=small_model,
        batch_size=3,
        max_batches=2,
        progress=lambda done, remaining: seen.append((done, remaining)),
    )
    assert seen == [(3, 7), (6, 4)]
    assert (partial.reembedding_to, partial.embedding_model, partial.dimension) == (
        small_model,
        "all-MiniLM-L6-v2",
        384,
    )
    # Meanwhile searches read the old vectors, and writes go on (and join the move).
    hits = memory.vectors_search(actor=dev, collection="trip", query="boat to Morocco", k=3)
    assert hits.hits
    memory.vectors_upsert(
        actor=dev, collection="trip", records=[{"id": "t10", "text": "Buy a phrase book"}]
    )
    with pytest.raises(InvalidInputError) as caught:
        memory.vectors_upsert(
            actor=dev, collection="trip", records=[{"id": "v", "vector": [0.1] * 384}]
        )
    assert next(iter(caught.value.fields)) == "records[0].text"

    # The CLI resumes where the API stopped.
    out = io.StringIO()
    call_command("memory", "reembed", str(info.id), "--model", small_model, stdout=out)
    assert "searches now use tiny-embed (8 dimensions)" in out.getvalue()
    done = memory.collection_get(actor=dev, collection="trip")
    assert (done.embedding_model, done.dimension, done.reembedding_to) == (small_model, 8, None)
    assert done.record_count == 11
    assert _index_names(info.id) == {f"memory_vec_{info.id.hex}_1"}
    (item,) = memory.vectors_get(actor=dev, collection="trip", ids=["t10"], include_vectors=True)
    assert len(item.vector) == 8
    result = memory.vectors_search(actor=dev, collection="trip", query=TEXTS[4], mode="vector", k=1)
    assert [hit.id for hit in result.hits] == ["t4"]  # the fake model: same text, same vector
    assert events_named("memory.CollectionReembedded")[-1].payload["dimension"] == 8


def test_reembed_refuses_records_without_text(people, small_model):
    dev = actor_as(people.developer)
    memory.collection_create(actor=dev, name="raw", embedding_model="", dimension=4)
    memory.vectors_upsert(
        actor=dev, collection="raw", records=[{"id": "a", "vector": [1, 0, 0, 0]}]
    )
    with pytest.raises(InvalidInputError) as caught:
        memory.collection_reembed(actor=dev, collection="raw", model=small_model)
    assert "1 records have no text" in caught.value.message
    assert Collection.objects.get(name="raw").pending_model == ""


def test_cli_reindex_and_stats(people):
    dev = actor_as(people.developer)
    info = memory.collection_create(actor=dev, name="cli-notes", embedding_model="", dimension=2)
    memory.vectors_upsert(
        actor=dev, collection="cli-notes", records=[{"id": "a", "vector": [1, 0]}]
    )
    out = io.StringIO()
    call_command("memory", "reindex", "cli-notes", stdout=out)
    assert "index rebuilt over 1 records" in out.getvalue()
    out = io.StringIO()
    call_command("memory", "stats", stdout=out)
    assert f"cli-notes ({info.id}): 1 records, - 2-d cosine, index " in out.getvalue()
    with pytest.raises(CommandError):
        call_command("memory", "reindex", "no-such-collection")
