"""MCP servers over REST: register, read, change, import, remove; bad input; roles."""

from __future__ import annotations

import sys

import pytest

from lumina.tools.models import McpServer, Tool
from tests.tools.conftest import client_for
from tests.tools.mcp_servers.process import script_command

pytestmark = pytest.mark.django_db

URL = "/api/v1/tools/mcp-servers"
SECRET = "sk-mcp-secret-0123456789"


@pytest.fixture(autouse=True)
def stdio_allowed(settings):
    settings.LUMINA_MCP_STDIO_COMMANDS = (sys.executable,)


def _error(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "message", "fields"}
    if field is not None:  # the field, or a path inside it ("env.A")
        assert any(key.split(".")[0] == field for key in error["fields"]), error
    return error


def _stdio_body(**overrides):
    body = {
        "name": "calc",
        "transport": "stdio",
        "command": script_command(),
        "env": {"CALCULATOR_TOOLS": "add,echo", "API_KEY": SECRET},
    }
    body.update(overrides)
    return body


def test_an_admin_registers_imports_and_removes_a_stdio_server(tools_admin_client):
    created = tools_admin_client.post(URL, _stdio_body(), format="json")
    assert created.status_code == 201, created.content
    server = created.json()
    assert server["transport"] == "stdio"
    assert server["has_env"] is True
    assert SECRET not in created.content.decode()

    imported = tools_admin_client.post(f"{URL}/calc/import")
    assert imported.status_code == 200, imported.content
    assert sorted(imported.json()["created"]) == ["calc_add", "calc_echo"]
    assert imported.json()["server"]["tool_names"] == ["calc_add", "calc_echo"]

    tool = tools_admin_client.get("/api/v1/tools/calc_add").json()
    assert tool["kind"] == "mcp"
    assert tool["input_schema"]["required"] == ["a", "b"]

    listed = tools_admin_client.get(URL).json()
    assert [row["name"] for row in listed["results"]] == ["calc"]
    assert SECRET not in str(listed)

    patched = tools_admin_client.patch(f"{URL}/{server['id']}", {"enabled": False}, format="json")
    assert patched.json()["enabled"] is False
    _error(tools_admin_client.post(f"{URL}/calc/import"), 400, "mcp_server")

    assert tools_admin_client.delete(f"{URL}/calc").status_code == 204
    assert not McpServer.objects.exists()
    assert not Tool.objects.filter(kind="mcp").exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"transport": "ftp"}, "transport"),
        ({"command": "not a list"}, "command"),
        ({"command": ["/bin/sh", "-c", "id"]}, "command"),
        ({"env": {"A": 1}}, "env"),
        ({"env": "A=1"}, "env"),
        ({"timeout_seconds": -1}, "timeout_seconds"),
        ({"name": ""}, "name"),
        ({"transport": "http", "command": [], "url": "http://169.254.169.254/"}, "url"),
        ({"transport": "http", "command": [], "url": "http://[::ffff:10.0.0.1]/mcp"}, "url"),
        ({"transport": "http", "command": [], "url": "gopher://127.0.0.1/"}, "url"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_nothing_is_saved(
    tools_admin_client, overrides, field
):
    body = _stdio_body(**overrides)
    if body["transport"] == "http":
        body.pop("env")
        body.pop("command")
    _error(tools_admin_client.post(URL, body, format="json"), 400, field)
    assert not McpServer.objects.exists()


def test_a_name_taken_is_a_409(tools_admin_client):
    assert tools_admin_client.post(URL, _stdio_body(), format="json").status_code == 201
    _error(tools_admin_client.post(URL, _stdio_body(), format="json"), 409, "name")


def test_an_unknown_server_is_a_404(tools_admin_client):
    _error(tools_admin_client.get(f"{URL}/nothing-here"), 404, "mcp_server")
    _error(tools_admin_client.post(f"{URL}/nothing-here/import"), 404, "mcp_server")


def test_an_unreachable_server_import_is_a_502_and_nothing_leaks(tools_admin_client):
    body = {
        "name": "remote",
        "transport": "http",
        "url": "http://127.0.0.1:9/mcp",
        "headers": {"Authorization": f"Bearer {SECRET}"},
        "timeout_seconds": 5,
    }
    assert tools_admin_client.post(URL, body, format="json").status_code == 201
    response = tools_admin_client.post(f"{URL}/remote/import")
    _error(response, 502)
    assert SECRET not in response.content.decode()
    assert "could not be reached" in tools_admin_client.get(f"{URL}/remote").json()["last_error"]


@pytest.mark.parametrize("who", ["anonymous", "nobody", "staff", "viewer", "developer"])
def test_callers_without_tools_manage_are_refused_everywhere(request, who, tools_admin_client):
    assert tools_admin_client.post(URL, _stdio_body(), format="json").status_code == 201
    client = client_for(None if who == "anonymous" else request.getfixturevalue(who))
    expected = 401 if who == "anonymous" else 403
    attempts = [
        client.get(URL),
        client.post(URL, _stdio_body(name="mine"), format="json"),
        client.get(f"{URL}/calc"),
        client.patch(f"{URL}/calc", {"enabled": False}, format="json"),
        client.post(f"{URL}/calc/import"),
        client.delete(f"{URL}/calc"),
    ]
    assert [response.status_code for response in attempts] == [expected] * len(attempts)
    server = McpServer.objects.get()
    assert (server.name, server.enabled) == ("calc", True)
    assert not Tool.objects.exists()
