"""``manage.py memory topics …`` and the topics' ``memory.api`` functions."""

from __future__ import annotations

import io
import uuid

import pytest
from django.core.management import CommandError, call_command

from lumina.kernel.errors import NotFoundError, PermissionDeniedError
from lumina.memory import api as memory
from lumina.memory.models.topics import Entity, Relation, Topic
from lumina.memory.services.graph import graph_index_records
from tests.memory.conftest import actor_as
from tests.memory.graph_support import store_history

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command("memory", *args, stdout=out)
    return out.getvalue()


def test_extract_rebuild_and_stats_from_the_command_line(people):
    owner = people.developer.id
    records = store_history(owner, announce=False)
    output = run("topics", "extract", "--user", str(owner), "--scope", "session", "--key", "s4")
    assert output.startswith("5 records:")
    assert Topic.objects.filter(owner_id=owner, scope="session", scope_key="s4").exists()
    assert not Entity.objects.filter(owner_id=owner).exists()
    output = run("topics", "rebuild", "--user", str(owner))
    assert output.startswith(f"{len(records)} records read:")
    assert Relation.objects.filter(owner_id=owner, kind="family").exists()
    stats = run("stats")
    assert "topics:" in stats
    assert "entities:" in stats


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("topics", "extract", "--user", "nobody"), "not a user id"),
        (("topics", "extract", "--user", str(uuid.uuid4()), "--scope", "agent"), "key"),
        (("topics", "rebuild", "--user", "x"), "not a user id"),
    ],
)
def test_bad_arguments_are_errors_that_say_why(args, words):
    with pytest.raises(CommandError, match=words):
        run(*args)


def test_the_api_lists_reads_and_refuses_like_rest(people):
    owner = people.developer.id
    records = store_history(owner, announce=False)
    graph_index_records(record_ids=[r.id for r in records], llm=False)
    mine = actor_as(people.developer)
    extraction = memory.topics_extract(actor=mine)
    assert extraction.record_count == len(records)
    listed = memory.topics_list(actor=mine)
    assert [t.id for t in listed] == [t.id for t in extraction.topics]
    leaf = next(t for t in listed if t.level == 0)
    assert memory.topic_get(actor=mine, topic_id=leaf.id) == leaf
    assert len(memory.topic_members(actor=mine, topic_id=leaf.id)) == leaf.size
    graph = memory.graph_get(actor=mine, entity="Ana")
    assert "Lisbon" in {n.name for n in graph.nodes}
    other = actor_as(people.other_developer)
    with pytest.raises(PermissionDeniedError):
        memory.topics_list(actor=other, user_id=owner)
    with pytest.raises(PermissionDeniedError):
        memory.graph_get(actor=other, user_id=owner)
    with pytest.raises(NotFoundError):
        memory.topic_get(actor=other, topic_id=leaf.id)
