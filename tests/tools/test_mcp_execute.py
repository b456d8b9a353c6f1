"""MCP tools run through POST /tools/execute like any other kind: same checks, same
records. The servers are real processes: a stdio one per call, and one on streamable HTTP.
"""

from __future__ import annotations

import sys

import pytest

from lumina.kernel.models import OutboxEvent
from lumina.tools.mcp import pool
from lumina.tools.models import Execution, McpServer
from lumina.tools.services.mcp import mcp_server_register, mcp_tools_import
from tests.tools.conftest import SYSTEM, client_for
from tests.tools.mcp_servers.process import http_server, script_command

pytestmark = pytest.mark.django_db


def _run(client, tool, arguments=None):
    body = {"tool": tool, "arguments": arguments if arguments is not None else {}}
    return client.post("/api/v1/tools/execute", body, format="json")


@pytest.fixture
def calculator(settings):
    settings.LUMINA_MCP_STDIO_COMMANDS = (sys.executable,)
    server = mcp_server_register(
        actor=SYSTEM,
        name="calc",
        transport="stdio",
        command=script_command(),
        timeout_seconds=10,
    )
    mcp_tools_import(actor=SYSTEM, server=server.id)
    yield server
    pool.stop()  # the warm sessions' server processes end with the test


def test_an_mcp_tool_runs_and_its_result_is_checked_against_the_imported_schema(
    developer_client, developer, calculator
):
    response = _run(developer_client, "calc_add", {"a": 2, "b": 3})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "succeeded"
    assert body["result"] == {"result": 5}
    execution = Execution.objects.get()
    assert execution.actor_id == developer.pk
    assert execution.resource_use["mcp_server"] == "calc"
    assert OutboxEvent.objects.filter(name="tools.ToolExecuted").count() == 1


def test_arguments_are_checked_before_the_server_is_started(developer_client, calculator):
    response = _run(developer_client, "calc_add", {"a": "two", "b": 3})
    assert response.status_code == 400
    assert "arguments.a" in response.json()["error"]["fields"]
    assert Execution.objects.get().status == "rejected"


def test_a_server_that_crashes_mid_call_is_a_recorded_failure_and_lumina_goes_on(
    developer_client, calculator
):
    crashed = _run(developer_client, "calc_crash").json()
    assert crashed["status"] == "failed"
    assert crashed["error_code"] == "mcp_server_crashed"
    assert "closed the connection" in crashed["error"]
    again = _run(developer_client, "calc_add", {"a": 1, "b": 1}).json()
    assert again["status"] == "succeeded"
    assert [row.status for row in Execution.objects.order_by("created_at")] == [
        "failed",
        "succeeded",
    ]
    assert OutboxEvent.objects.filter(name="tools.ToolFailed").count() == 1


def test_a_server_that_never_answers_times_out_and_is_recorded(developer_client, calculator):
    hung = _run(developer_client, "calc_hang").json()
    assert hung["status"] == "timeout"
    assert hung["error_code"] == "wall_clock"
    assert "did not answer within 10 s" in hung["error"]
    assert Execution.objects.get().status == "timeout"


def test_a_disabled_server_refuses_to_run_its_tools(developer_client, calculator):
    McpServer.objects.filter(id=calculator.id).update(enabled=False)
    body = _run(developer_client, "calc_add", {"a": 1, "b": 1}).json()
    assert body["status"] == "refused"
    assert "disabled" in body["error"]


@pytest.mark.parametrize("role", [None, "Viewer"])
def test_callers_without_tools_execute_cannot_run_an_mcp_tool(user_factory, calculator, role):
    client = client_for(user_factory(role=role))
    assert _run(client, "calc_add", {"a": 1, "b": 1}).status_code == 403
    assert Execution.objects.get().status == "rejected"


def test_an_mcp_tool_over_streamable_http_runs_and_its_headers_stay_secret(
    developer_client, tools_admin_client
):
    with http_server() as url:
        registered = tools_admin_client.post(
            "/api/v1/tools/mcp-servers",
            {
                "name": "remote",
                "transport": "http",
                "url": url,
                "headers": {"X-Api-Key": "hdr-secret-4242"},
            },
            format="json",
        )
        assert registered.status_code == 201, registered.content
        imported = tools_admin_client.post("/api/v1/tools/mcp-servers/remote/import")
        assert "remote_echo" in imported.json()["created"]
        response = _run(developer_client, "remote_echo", {"word": "hey", "times": 2})
    body = response.json()
    assert body["status"] == "succeeded", body
    assert body["result"] == {"result": "hey hey"}
    assert "hdr-secret-4242" not in response.content.decode()
    assert "hdr-secret-4242" not in str(Execution.objects.get().__dict__)


def test_an_http_server_that_went_away_is_a_recorded_failure(developer_client, tools_admin_client):
    with http_server() as url:
        tools_admin_client.post(
            "/api/v1/tools/mcp-servers",
            {"name": "brief", "transport": "http", "url": url, "timeout_seconds": 5},
            format="json",
        )
        tools_admin_client.post("/api/v1/tools/mcp-servers/brief/import")
    body = _run(developer_client, "brief_add", {"a": 1, "b": 2}).json()
    assert body["status"] == "failed"
    assert "could not be reached" in body["error"]
