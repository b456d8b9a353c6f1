"""Running tools over REST: contracts on both sides, records, events, refusals by role."""

from __future__ import annotations

import uuid

import pytest

from lumina.kernel.models import OutboxEvent
from lumina.security.services.rbac import grant_add
from lumina.tools.models import Execution
from tests.tools.conftest import SYSTEM, client_for
from tests.tools.factories import builtin_tool, python_tool

pytestmark = pytest.mark.django_db


def _error(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "message", "fields"}
    if field is not None:
        assert field in error["fields"], error
    return error


def _run(client, tool, arguments=None, **extra):
    body = {"tool": tool, "arguments": arguments if arguments is not None else {}, **extra}
    return client.post("/api/v1/tools/execute", body, format="json")


def test_a_builtin_runs_and_its_execution_is_stored_with_its_event(developer_client, developer):
    builtin_tool("text_stats", name="stats")
    response = _run(developer_client, "stats", {"text": "one two\nthree"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "succeeded"
    assert body["result"] == {"characters": 13, "words": 3, "lines": 2}
    assert body["actor_id"] == str(developer.pk)
    row = Execution.objects.get(id=body["id"])
    assert (row.tool_name, row.tool_version, row.arguments) == (
        "stats",
        1,
        {"text": "one two\nthree"},
    )
    events = OutboxEvent.objects.filter(name="tools.ToolExecuted")
    assert [event.payload["execution_id"] for event in events] == [body["id"]]
    # Events name the run, never its arguments or result.
    assert "three" not in str(events[0].payload)


def test_a_python_tool_runs_in_the_sandbox(developer_client):
    tool = python_tool("adder")
    response = _run(developer_client, str(tool.id), {"a": 2, "b": 40})
    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["result"]) == ("succeeded", {"sum": 42})


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"a": "two", "b": 1}, "arguments.a"),
        ({"a": 1}, "arguments"),
        ({"a": 1, "b": 2, "c": 3}, "arguments"),
    ],
)
def test_arguments_against_the_schema_are_a_400_naming_the_path_and_recorded(
    developer_client, arguments, field
):
    python_tool("adder")
    error = _error(_run(developer_client, "adder", arguments), 400, field)
    assert error["code"] == "invalid_arguments"
    row = Execution.objects.get()
    assert (row.status, row.error_code) == ("rejected", "invalid_arguments")
    assert OutboxEvent.objects.filter(name="tools.ToolFailed").count() == 1


def test_a_versions_contracts_are_compiled_once(developer_client, monkeypatch):
    from lumina.tools import schemas

    python_tool("adder")
    compiled = []
    real = schemas._validator_for
    monkeypatch.setattr(
        schemas, "_validator_for", lambda encoded: compiled.append(encoded) or real(encoded)
    )
    for a in range(3):
        assert _run(developer_client, "adder", {"a": a, "b": 1}).json()["result"] == {"sum": a + 1}
    assert len(compiled) == 2  # the argument schema and the result schema, once each
    _error(_run(developer_client, "adder", {"a": "x", "b": 1}), 400, "arguments.a")
    assert len(compiled) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"arguments": {}}, "tool"),
        ({"tool": "adder", "arguments": [1, 2]}, "arguments"),
        ({"tool": "adder", "arguments": "a=1"}, "arguments"),
        ({"tool": "adder", "version": 0}, "version"),
        ({"tool": "adder", "version": "1"}, "version"),
        ({"tool": "adder", "asynchronous": "yes"}, "asynchronous"),
    ],
)
def test_a_malformed_request_is_a_400_naming_the_field(developer_client, body, field):
    python_tool("adder")
    _error(developer_client.post("/api/v1/tools/execute", body, format="json"), 400, field)


def test_a_result_against_its_schema_is_recorded_as_invalid_and_not_returned(developer_client):
    python_tool("liar", source="def main(a, b):\n    return {'sum': 'many'}\n")
    response = _run(developer_client, "liar", {"a": 1, "b": 2})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["error_code"], body["result"]) == (
        "invalid_result",
        "invalid_result",
        None,
    )
    assert "result.sum" in body["error"]
    assert OutboxEvent.objects.filter(name="tools.ToolFailed").count() == 1


def test_an_unknown_tool_is_a_404_for_who_may_run_tools_and_is_recorded(developer_client):
    error = _error(_run(developer_client, "no_such_tool"), 404, "tool")
    assert error["code"] == "tool_not_found"
    row = Execution.objects.get()
    assert (row.tool_id, row.tool_name, row.status) == (None, "no_such_tool", "rejected")


def test_an_unknown_tool_is_a_403_for_who_may_run_none(request):
    client = client_for(request.getfixturevalue("viewer"))
    _error(_run(client, "no_such_tool"), 403)


def test_a_disabled_tool_does_not_run(developer_client):
    python_tool("adder", enabled=False)
    _error(_run(developer_client, "adder", {"a": 1, "b": 2}), 409, "tool")


def test_an_older_version_runs_when_asked_for(developer_client):
    from lumina.tools.services.registry import tool_update

    python_tool("adder")
    tool_update(actor=SYSTEM, tool="adder", source="def main(a, b):\n    return {'sum': a * b}\n")
    assert _run(developer_client, "adder", {"a": 3, "b": 4}).json()["result"] == {"sum": 12}
    old = _run(developer_client, "adder", {"a": 3, "b": 4}, version=1).json()
    assert (old["result"], old["tool_version"]) == ({"sum": 7}, 1)
    _error(_run(developer_client, "adder", {"a": 3, "b": 4}, version=7), 404, "version")


def test_a_change_to_a_tool_applies_to_the_next_run(developer_client):
    # Versions are kept per process once read; the tool's own row is read on every run.
    from lumina.tools.services.registry import tool_update

    python_tool("adder")
    assert _run(developer_client, "adder", {"a": 3, "b": 4}).json()["result"] == {"sum": 7}
    tool_update(actor=SYSTEM, tool="adder", source="def main(a, b):\n    return {'sum': a * b}\n")
    after = _run(developer_client, "adder", {"a": 3, "b": 4}).json()
    assert (after["result"], after["tool_version"]) == ({"sum": 12}, 2)
    tool_update(actor=SYSTEM, tool="adder", enabled=False)
    _error(_run(developer_client, "adder", {"a": 3, "b": 4}), 409, "tool")
    _error(_run(developer_client, "adder", {"a": 3, "b": 4}, version=1), 409, "tool")


def test_a_removed_tool_of_the_same_name_is_not_the_one_that_runs(developer_client):
    from lumina.tools.services.registry import tool_delete

    python_tool("adder")
    assert _run(developer_client, "adder", {"a": 3, "b": 4}).json()["result"] == {"sum": 7}
    tool_delete(actor=SYSTEM, tool="adder")
    _error(_run(developer_client, "adder", {"a": 3, "b": 4}), 404, "tool")
    python_tool("adder", source="def main(a, b):\n    return {'sum': a - b}\n")
    assert _run(developer_client, "adder", {"a": 3, "b": 4}).json()["result"] == {"sum": -1}


def test_the_execute_answer_is_what_the_documented_serializer_gives(developer_client):
    from lumina.tools.http.executions import ExecutionOutput, execution_body
    from lumina.tools.selectors.executions import execution_dto

    python_tool("adder")
    ok = _run(developer_client, "adder", {"a": 1, "b": 2}).json()
    broken = python_tool(source="def main(a, b):\n    raise ValueError('no')\n")
    failed = _run(developer_client, str(broken.id), {"a": 1, "b": 2}).json()
    assert (ok["status"], failed["status"]) == ("succeeded", "failed")
    for body in (ok, failed):
        dto = execution_dto(Execution.objects.get(id=body["id"]))
        assert execution_body(dto) == ExecutionOutput(dto).data
        assert body == ExecutionOutput(dto).data


# --- Who may run what ---------------------------------------------------------------------


@pytest.mark.parametrize("who", ["nobody", "staff", "viewer"])
def test_without_tools_execute_nothing_runs_and_the_refusal_is_recorded(request, who):
    tool = builtin_tool("text_stats", name="stats")
    user = request.getfixturevalue(who)
    _error(_run(client_for(user), "stats", {"text": "x"}), 403)
    row = Execution.objects.get()
    assert (row.tool_id, row.status, row.error_code, row.actor_id) == (
        tool.id,
        "rejected",
        "permission_denied",
        user.pk,
    )
    assert row.result is None


def test_an_object_grant_lets_a_user_run_that_one_tool(nobody):
    granted = builtin_tool("text_stats", name="stats")
    builtin_tool("text_stats", name="other")
    grant_add(
        actor=SYSTEM,
        principal=f"user:{nobody.pk}",
        action="tools.execute",
        resource_type="tools.tool",
        resource_id=str(granted.id),
    )
    client = client_for(nobody)
    assert _run(client, "stats", {"text": "a"}).json()["status"] == "succeeded"
    _error(_run(client, "other", {"text": "a"}), 403)


def test_a_token_without_the_tools_execute_scope_cannot_run(developer):
    from lumina.security.services.tokens import token_create

    builtin_tool("text_stats", name="stats")
    issued = token_create(actor=SYSTEM, user_id=developer.pk, name="ro", scopes=["tools.read"])
    client = client_for(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    _error(_run(client, "stats", {"text": "a"}), 403)
    assert client.get("/api/v1/tools").status_code == 200


def test_anonymous_callers_run_nothing():
    builtin_tool("text_stats", name="stats")
    _error(_run(client_for(None), "stats", {"text": "a"}), 401)
    assert not Execution.objects.exists()


def test_a_random_execution_id_is_not_found(developer_client):
    _error(developer_client.get(f"/api/v1/tools/results/{uuid.uuid4()}"), 404, "execution")
