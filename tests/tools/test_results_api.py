"""Results: who sees which executions, filters, and post-processing (tokens, JSON, summary)."""

from __future__ import annotations

import uuid

import pytest

from lumina.tools.services.executions import execute
from lumina.tools.services.results import json_extract
from tests.tools.conftest import actor_of_user, client_for
from tests.tools.factories import builtin_tool, python_tool

pytestmark = pytest.mark.django_db


def _error(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    if field is not None:
        assert field in error["fields"], error
    return error


@pytest.fixture
def runs(developer, other_developer):
    builtin_tool("text_stats", name="stats")
    python_tool("adder")
    mine = [
        execute(actor=actor_of_user(developer), tool="stats", arguments={"text": "a b"}),
        execute(actor=actor_of_user(developer), tool="adder", arguments={"a": 1, "b": 2}),
    ]
    theirs = execute(actor=actor_of_user(other_developer), tool="stats", arguments={"text": "x"})
    return mine, theirs


def test_people_see_their_own_executions_only(runs, developer):
    mine, theirs = runs
    client = client_for(developer)
    listed = client.get("/api/v1/tools/results").json()["results"]
    assert [row["id"] for row in listed] == [str(mine[1].id), str(mine[0].id)]
    assert client.get(f"/api/v1/tools/results/{mine[0].id}").json()["result"]["words"] == 2
    _error(client.get(f"/api/v1/tools/results/{theirs.id}"), 404, "execution")
    _error(client.post(f"/api/v1/tools/results/{theirs.id}/process", {}, format="json"), 404)


def test_read_all_sees_everyones_and_filters_them(runs, tools_admin, other_developer):
    mine, theirs = runs
    client = client_for(tools_admin)
    assert client.get("/api/v1/tools/results").json()["count"] == 3
    by_tool = client.get("/api/v1/tools/results?tool=stats").json()["results"]
    assert {row["id"] for row in by_tool} == {str(mine[0].id), str(theirs.id)}
    by_actor = client.get(f"/api/v1/tools/results?actor_id={other_developer.pk}").json()
    assert [row["id"] for row in by_actor["results"]] == [str(theirs.id)]
    assert client.get("/api/v1/tools/results?status=failed").json()["count"] == 0


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=exploded", "status"),
        ("run_id=not-a-uuid", "run_id"),
        ("since=yesterday", "since"),
        ("since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "until"),
        ("page_size=100000", "page_size"),
    ],
)
def test_bad_filters_are_a_400_naming_the_parameter(developer, query, field):
    _error(client_for(developer).get(f"/api/v1/tools/results?{query}"), 400, field)


def test_a_viewer_without_runs_sees_none_and_signed_out_callers_nothing(runs, viewer):
    assert client_for(viewer).get("/api/v1/tools/results").json()["count"] == 0
    _error(client_for(None).get("/api/v1/tools/results"), 401)
    _error(client_for(None).get(f"/api/v1/tools/results/{uuid.uuid4()}"), 401)


def test_a_result_is_truncated_to_a_token_budget(developer):
    python_tool(
        "chatty",
        source="def main():\n    return 'many words here ' * 300\n",
        input_schema={"type": "object"},
        output_schema={"type": "string"},
    )
    done = execute(actor=actor_of_user(developer), tool="chatty", arguments={})
    response = client_for(developer).post(
        f"/api/v1/tools/results/{done.id}/process", {"max_tokens": 10}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["tokens"], body["truncated"]) == (10, True)
    assert "many words here many words here".startswith(body["text"][:20])
    whole = client_for(developer).post(
        f"/api/v1/tools/results/{done.id}/process", {}, format="json"
    )
    assert whole.json()["truncated"] is False
    assert whole.json()["tokens"] > 800


def test_json_is_extracted_from_a_text_result(developer):
    text = 'The answer is ```json\n{"x": [1, 2]}\n``` as asked.'
    python_tool(
        "prose",
        source=f"def main():\n    return {text!r}\n",
        input_schema={"type": "object"},
        output_schema={"type": "string"},
    )
    done = execute(actor=actor_of_user(developer), tool="prose", arguments={})
    response = client_for(developer).post(
        f"/api/v1/tools/results/{done.id}/process", {"extract_json": True}, format="json"
    )
    assert response.json()["json"] == {"x": [1, 2]}


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ('{"a": 1}', {"a": 1}),
        ('Result: {"a": {"b": [1]}} and more', {"a": {"b": [1]}}),
        ("list [1, 2, 3] here", [1, 2, 3]),
        ("```\n[true]\n```", [True]),
        ("no json {here", None),
        ("", None),
    ],
)
def test_json_extraction_finds_the_value_or_none(text, found):
    assert json_extract(text) == found


def test_summarising_without_a_configured_model_is_a_400_naming_it(runs, developer, settings):
    settings.LUMINA_TOOLS_SUMMARY_MODEL = ""
    mine, _ = runs
    response = client_for(developer).post(
        f"/api/v1/tools/results/{mine[0].id}/process", {"summarise": True}, format="json"
    )
    _error(response, 400, "summarise")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": "ten"}, "max_tokens"),
        ({"extract_json": "yes"}, "extract_json"),
    ],
)
def test_bad_processing_input_is_a_400_naming_the_field(runs, developer, body, field):
    mine, _ = runs
    response = client_for(developer).post(
        f"/api/v1/tools/results/{mine[0].id}/process", body, format="json"
    )
    _error(response, 400, field)


@pytest.mark.django_db(transaction=True)
def test_a_result_is_summarised_through_the_configured_model(openai_upstream, developer, settings):
    from lumina.providers.types import Capability
    from tests.providers.factories import DeploymentFactory, ProviderFactory

    DeploymentFactory(
        provider=ProviderFactory(name="oai", base_url=openai_upstream.url),
        name="summariser",
        capabilities=[Capability.CHAT],
    )
    settings.LUMINA_TOOLS_SUMMARY_MODEL = "summariser"
    openai_upstream.script.answer = "Two words were counted."
    builtin_tool("text_stats", name="stats")
    done = execute(actor=actor_of_user(developer), tool="stats", arguments={"text": "a b"})
    response = client_for(developer).post(
        f"/api/v1/tools/results/{done.id}/process", {"summarise": True}, format="json"
    )
    assert response.status_code == 200, response.content
    assert (response.json()["summary"], response.json()["summary_model"]) == (
        "Two words were counted.",
        "summariser",
    )
    [sent] = [r.body for r in openai_upstream.requests]
    assert '"words":2' in sent["messages"][1]["content"]
