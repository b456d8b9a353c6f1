"""The registry over REST: contracts checked on save, versions, the OpenAI export, roles."""

from __future__ import annotations

import pytest

from lumina.kernel.models import OutboxEvent
from lumina.tools.models import HttpAllowEntry, Tool, ToolVersion
from tests.tools.conftest import client_for
from tests.tools.factories import ADD_INPUT, ADD_OUTPUT, ADD_SOURCE, builtin_tool, python_tool

pytestmark = pytest.mark.django_db


def _error(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "message", "fields"}
    if field is not None:
        assert field in error["fields"], error
    return error


def _python_body(**overrides):
    body = {
        "name": "adder",
        "kind": "python",
        "description": "Add two integers.",
        "source": ADD_SOURCE,
        "input_schema": ADD_INPUT,
        "output_schema": ADD_OUTPUT,
    }
    body.update(overrides)
    return body


def test_an_admin_registers_a_python_tool_and_gets_version_one(tools_admin_client):
    response = tools_admin_client.post("/api/v1/tools", _python_body(), format="json")
    assert response.status_code == 201, response.content
    tool = response.json()
    assert (tool["name"], tool["kind"], tool["version"]) == ("adder", "python", 1)
    assert tool["input_schema"] == ADD_INPUT
    assert tool["limits"] == {
        "timeout_seconds": 10.0,
        "memory_mb": 256,
        "output_bytes": 1_000_000,
        "network": False,
    }
    assert OutboxEvent.objects.filter(name="tools.ToolRegistered").count() == 1


@pytest.mark.parametrize(
    ("field", "schema"),
    [
        ("input_schema", {"type": "object", "properties": {"a": {"type": "integr"}}}),
        ("input_schema", {"type": "string"}),
        ("input_schema", {"type": "object", "properties": {"a": {"$ref": "#/$defs/none"}}}),
        ("input_schema", {"type": "object", "properties": {"a": {"$ref": "http://127.0.0.1/x"}}}),
        ("output_schema", {"type": "object", "required": "sum"}),
        ("output_schema", {"minimum": "zero"}),
    ],
)
def test_a_broken_schema_is_a_400_naming_it_and_nothing_is_saved(tools_admin_client, field, schema):
    response = tools_admin_client.post(
        "/api/v1/tools", _python_body(**{field: schema}), format="json"
    )
    error = _error(response, 400, field)
    assert error["code"] == "invalid_schema"
    assert not Tool.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"source": "def main(:\n"}, "source"),
        ({"source": "def helper():\n    return 1\n"}, "source"),
        ({"source": ""}, "source"),
        ({"kind": "shell"}, "kind"),
        ({"name": "has space"}, "name"),
        ({"name": "execute"}, "name"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"memory_mb": "lots"}, "memory_mb"),
        ({"input_schema": "not an object"}, "input_schema"),
        ({"network": "yes"}, "network"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(tools_admin_client, overrides, field):
    response = tools_admin_client.post("/api/v1/tools", _python_body(**overrides), format="json")
    _error(response, 400, field)
    assert not Tool.objects.exists()


def test_a_second_tool_of_the_same_name_is_a_conflict(tools_admin_client):
    python_tool("adder")
    response = tools_admin_client.post("/api/v1/tools", _python_body(), format="json")
    _error(response, 409, "name")


def test_changing_what_a_tool_does_saves_the_next_version_and_keeps_the_old(tools_admin_client):
    tool = python_tool("adder")
    response = tools_admin_client.patch(
        "/api/v1/tools/adder",
        {"source": "def main(a, b):\n    return {'sum': b + a}\n", "timeout_seconds": 2},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["version"] == 2
    assert response.json()["limits"]["timeout_seconds"] == 2
    versions = tools_admin_client.get(f"/api/v1/tools/{tool.id}/versions").json()["results"]
    assert [v["number"] for v in versions] == [2, 1]
    assert versions[1]["source"] == ADD_SOURCE
    one = tools_admin_client.get("/api/v1/tools/adder/versions/1")
    assert one.json()["number"] == 1, one.content
    _error(tools_admin_client.get("/api/v1/tools/adder/versions/9"), 404, "version")


def test_disabling_a_tool_or_repeating_its_values_saves_no_version(tools_admin_client):
    python_tool("adder")
    response = tools_admin_client.patch(
        "/api/v1/tools/adder", {"enabled": False, "source": ADD_SOURCE}, format="json"
    )
    assert response.status_code == 200
    assert (response.json()["version"], response.json()["enabled"]) == (1, False)
    assert ToolVersion.objects.count() == 1


def test_a_broken_schema_in_a_change_is_refused_and_the_tool_stays(tools_admin_client):
    python_tool("adder")
    response = tools_admin_client.patch(
        "/api/v1/tools/adder", {"input_schema": {"type": "object", "properties": 3}}, format="json"
    )
    _error(response, 400, "input_schema")
    assert Tool.objects.get(name="adder").version == 1


def test_the_openai_export_lists_enabled_tools_as_functions(developer_client):
    python_tool("adder")
    python_tool("off", enabled=False)
    response = developer_client.get("/api/v1/tools?format=openai")
    assert response.status_code == 200
    assert response.json() == [
        {
            "type": "function",
            "function": {
                "name": "adder",
                "description": "Add two integers.",
                "parameters": ADD_INPUT,
            },
        }
    ]


def test_tools_are_listed_and_filtered(developer_client):
    python_tool("adder")
    builtin_tool("time_now", name="clock")
    listed = developer_client.get("/api/v1/tools").json()
    assert [tool["name"] for tool in listed["results"]] == ["adder", "clock"]
    only = developer_client.get("/api/v1/tools?kind=builtin").json()["results"]
    assert [tool["name"] for tool in only] == ["clock"]
    _error(developer_client.get("/api/v1/tools?kind=shell"), 400, "kind")
    _error(developer_client.get("/api/v1/tools/nothing"), 404, "tool")


def test_a_builtin_takes_its_contracts_from_lumina(tools_admin_client):
    response = tools_admin_client.post(
        "/api/v1/tools",
        {"name": "clock", "kind": "builtin", "builtin_name": "time_now"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["input_schema"]["properties"]["timezone"]["type"] == "string"
    response = tools_admin_client.post(
        "/api/v1/tools", {"name": "x", "kind": "builtin", "builtin_name": "rm_rf"}, format="json"
    )
    _error(response, 400, "builtin_name")
    names = [b["name"] for b in tools_admin_client.get("/api/v1/tools/builtins").json()]
    assert {"time_now", "text_stats"} <= set(names)


def test_an_http_tool_needs_its_url_on_the_allow_list(tools_admin_client, settings):
    body = {"name": "weather", "kind": "http", "http_url": "https://api.example.com/weather"}
    _error(tools_admin_client.post("/api/v1/tools", body, format="json"), 400, "http_url")
    response = tools_admin_client.post(
        "/api/v1/tools/http-allow-list", {"prefix": "https://api.example.com/"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert tools_admin_client.post("/api/v1/tools", body, format="json").status_code == 201
    # A sibling host or a prefix look-alike is not on the list.
    for url in ("https://api.example.com.evil.test/x", "http://api.example.com/weather"):
        body = {"name": "w2", "kind": "http", "http_url": url}
        _error(tools_admin_client.post("/api/v1/tools", body, format="json"), 400, "http_url")


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:6379/", "http://[::1]/"],
)
def test_an_http_tool_may_not_aim_at_metadata_or_loopback(tools_admin_client, settings, url):
    settings.LUMINA_OUTBOUND_ALLOW = ()
    HttpAllowEntry.objects.create(prefix=url)
    body = {"name": "ssrf", "kind": "http", "http_url": url}
    error = _error(tools_admin_client.post("/api/v1/tools", body, format="json"), 400, "http_url")
    assert error["code"] == "outbound_refused"
    response = tools_admin_client.post(
        "/api/v1/tools/http-allow-list", {"prefix": url}, format="json"
    )
    _error(response, 400, "prefix")


def test_deleting_a_tool_removes_its_versions(tools_admin_client):
    python_tool("adder")
    assert tools_admin_client.delete("/api/v1/tools/adder").status_code == 204
    assert not ToolVersion.objects.exists()
    _error(tools_admin_client.delete("/api/v1/tools/adder"), 404, "tool")


# --- Roles ------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["nobody", "staff", "viewer", "developer"])
def test_only_tools_manage_registers_changes_or_removes_tools(request, who):
    tool = python_tool("adder")
    client = client_for(request.getfixturevalue(who))
    body = _python_body(name="mine")
    _error(client.post("/api/v1/tools", body, format="json"), 403)
    _error(client.patch("/api/v1/tools/adder", {"enabled": False}, format="json"), 403)
    _error(client.delete(f"/api/v1/tools/{tool.id}"), 403)
    _error(
        client.post(
            "/api/v1/tools/http-allow-list", {"prefix": "https://a.example/"}, format="json"
        ),
        403,
    )
    assert Tool.objects.get(name="adder").enabled
    assert not Tool.objects.filter(name="mine").exists()


@pytest.mark.parametrize("who", ["nobody", "staff"])
def test_reading_tools_needs_tools_read(request, who):
    python_tool("adder")
    client = client_for(request.getfixturevalue(who))
    for url in ("/api/v1/tools", "/api/v1/tools/adder", "/api/v1/tools/adder/versions"):
        _error(client.get(url), 403)


def test_anonymous_callers_are_asked_to_sign_in():
    client = client_for(None)
    _error(client.get("/api/v1/tools"), 401)
    _error(client.post("/api/v1/tools", _python_body(), format="json"), 401)
