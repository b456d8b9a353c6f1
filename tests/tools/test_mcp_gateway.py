"""Lumina as an MCP server: the SDK's own client against /mcp on a real uvicorn server.

Each test runs Lumina's ASGI application in a thread on 127.0.0.1 and talks to it as any
MCP client would, with a Lumina API token. What the client sees is checked, and so is
what Lumina recorded (executions, refusals included).
"""

from __future__ import annotations

import sys
from contextlib import asynccontextmanager

import httpx2
import pytest
from asgiref.sync import sync_to_async
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from lumina.security.services.rbac import grant_add
from lumina.tools.mcp import pool
from lumina.tools.models import Execution
from lumina.tools.services.mcp import mcp_server_register, mcp_tools_import
from tests.providers.gateway_support import LiveAsgiServer, lumina_token
from tests.tools.conftest import SYSTEM
from tests.tools.factories import builtin_tool
from tests.tools.mcp_servers.process import script_command

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture
def lumina(transactional_db, settings):
    """Lumina's ASGI application served by uvicorn on 127.0.0.1, in a thread."""
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
    server = LiveAsgiServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@asynccontextmanager
async def mcp_client(server, token: str | None, **headers: str):
    sent = {"Authorization": f"Bearer {token}"} if token else {}
    sent.update(headers)
    async with (
        httpx2.AsyncClient(headers=sent, timeout=60) as http,
        Client(streamable_http_client(f"{server.url}/mcp", http_client=http)) as client,
    ):
        yield client


def _executions(**filters) -> list[Execution]:
    return list(Execution.objects.filter(**filters).order_by("created_at"))


@pytest.fixture
def stats():
    return builtin_tool("text_stats", name="stats")


async def test_a_developer_lists_and_calls_a_tool_and_the_call_is_recorded(
    lumina, developer, stats
):
    token = await sync_to_async(lumina_token)(developer)
    async with mcp_client(lumina, token) as client:
        listed = await client.list_tools()
        by_name = {tool.name: tool for tool in listed.tools}
        assert "stats" in by_name
        assert by_name["stats"].input_schema["required"] == ["text"]
        answer = await client.call_tool("stats", {"text": "one two\nthree"})
    assert answer.is_error is False
    assert answer.structured_content == {"characters": 13, "words": 3, "lines": 2}
    (execution,) = await sync_to_async(_executions)(tool_name="stats")
    assert execution.status == "succeeded"
    assert execution.actor_id == developer.pk
    assert execution.token_id is not None
    assert answer.meta["lumina/execution_id"] == str(execution.id)


async def test_arguments_that_break_the_schema_are_a_tool_error_and_recorded(
    lumina, developer, stats
):
    token = await sync_to_async(lumina_token)(developer)
    async with mcp_client(lumina, token) as client:
        answer = await client.call_tool("stats", {"text": 42})
    assert answer.is_error is True
    assert "invalid_arguments" in answer.content[0].text
    (execution,) = await sync_to_async(_executions)(tool_name="stats")
    assert execution.status == "rejected"


async def test_an_unknown_tool_is_a_protocol_error_and_recorded(lumina, developer, stats):
    token = await sync_to_async(lumina_token)(developer)
    async with mcp_client(lumina, token) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("no_such_tool", {})
    assert "no_such_tool" in caught.value.message
    (execution,) = await sync_to_async(_executions)(tool_name="no_such_tool")
    assert execution.status == "rejected"


@pytest.mark.parametrize(
    ("staff", "role"),
    [(False, None), (True, None), (False, "Viewer")],
    ids=["nobody", "staff", "viewer"],
)
async def test_a_user_without_tools_execute_sees_no_tool_and_may_call_none(
    lumina, user_factory, stats, staff, role
):
    user = await sync_to_async(user_factory)(staff=staff, role=role)
    token = await sync_to_async(lumina_token)(user)
    async with mcp_client(lumina, token) as client:
        assert (await client.list_tools()).tools == []
        with pytest.raises(MCPError):
            await client.call_tool("stats", {"text": "x"})
    (execution,) = await sync_to_async(_executions)(tool_name="stats")
    assert execution.status == "rejected"
    assert execution.actor_id == user.pk
    assert execution.result is None


async def test_a_token_scoped_without_tools_execute_lists_nothing_and_runs_nothing(
    lumina, developer, stats
):
    token = await sync_to_async(lumina_token)(developer, scopes=("tools.read",))
    async with mcp_client(lumina, token) as client:
        assert (await client.list_tools()).tools == []
        with pytest.raises(MCPError):
            await client.call_tool("stats", {"text": "x"})
    executions = await sync_to_async(_executions)()
    assert [execution.status for execution in executions] == ["rejected"]


async def test_a_disabled_tool_is_not_listed_and_does_not_run(lumina, developer, stats):
    from lumina.tools.services.registry import tool_update

    await sync_to_async(tool_update)(actor=SYSTEM, tool=stats.id, enabled=False)
    token = await sync_to_async(lumina_token)(developer)
    async with mcp_client(lumina, token) as client:
        assert "stats" not in {tool.name for tool in (await client.list_tools()).tools}
        answer = await client.call_tool("stats", {"text": "a"})
    assert answer.is_error is True
    assert "disabled" in answer.content[0].text
    (execution,) = await sync_to_async(_executions)(tool_name="stats")
    assert execution.status == "rejected"


async def test_an_object_grant_exposes_exactly_that_tool(lumina, nobody, stats):
    other = await sync_to_async(builtin_tool)("text_stats", name="other_stats")
    await sync_to_async(grant_add)(
        actor=SYSTEM,
        principal=f"user:{nobody.pk}",
        action="tools.execute",
        resource_type="tools.tool",
        resource_id=str(stats.id),
    )
    token = await sync_to_async(lumina_token)(nobody)
    async with mcp_client(lumina, token) as client:
        assert [tool.name for tool in (await client.list_tools()).tools] == ["stats"]
        assert (await client.call_tool("stats", {"text": "a"})).is_error is False
        with pytest.raises(MCPError):
            await client.call_tool(other.name, {"text": "a"})


async def test_without_a_valid_token_mcp_answers_401_and_runs_nothing(lumina, stats):
    async with httpx2.AsyncClient(timeout=30) as http:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        headers = {"Accept": "application/json, text/event-stream"}
        missing = await http.post(f"{lumina.url}/mcp", json=body, headers=headers)
        wrong = await http.post(
            f"{lumina.url}/mcp",
            json=body,
            headers={**headers, "Authorization": "Bearer lum_not_a_real_token"},
        )
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["error"]["code"] == "not_authenticated"
    with pytest.raises(Exception):  # noqa: B017, PT011 (the SDK wraps the 401 its own way)
        async with mcp_client(lumina, "lum_not_a_real_token") as client:
            await client.list_tools()
    assert await sync_to_async(_executions)() == []


async def test_a_host_outside_allowed_hosts_is_refused(lumina, developer):
    token = await sync_to_async(lumina_token)(developer)
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{lumina.url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
            headers={"Authorization": f"Bearer {token}", "Host": "evil.example"},
        )
    assert response.status_code == 400


async def test_a_revoked_token_stops_working_at_once(lumina, developer, stats):
    from lumina.security.services.tokens import token_create, token_revoke

    issued = await sync_to_async(token_create)(user_id=developer.pk, actor=SYSTEM, scopes=["*"])
    async with mcp_client(lumina, issued.secret) as client:
        assert (await client.call_tool("stats", {"text": "a"})).is_error is False
        await sync_to_async(token_revoke)(token_id=issued.token.id, actor=SYSTEM)
        with pytest.raises(Exception):  # noqa: B017, PT011 (a 401 mid-session)
            await client.call_tool("stats", {"text": "a"})
    assert len(await sync_to_async(_executions)()) == 1


# --- Through /mcp to an imported MCP server -----------------------------------------------


@pytest.fixture
def calculator(settings):
    settings.LUMINA_MCP_STDIO_COMMANDS = (sys.executable,)
    server = mcp_server_register(
        actor=SYSTEM,
        name="calc",
        transport="stdio",
        command=script_command(),
        env={"CALCULATOR_TOOLS": "add,crash,hang"},
        timeout_seconds=20,
    )
    mcp_tools_import(actor=SYSTEM, server=server.id)
    yield server
    pool.stop()  # the warm sessions' server processes end with the test


async def test_an_imported_mcp_tool_is_reached_through_mcp_and_survives_a_crash(
    lumina, developer, calculator
):
    token = await sync_to_async(lumina_token)(developer)
    async with mcp_client(lumina, token) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"calc_add", "calc_crash", "calc_hang"} <= names
        added = await client.call_tool("calc_add", {"a": 20, "b": 22})
        assert added.is_error is False, added.content
        assert added.structured_content == {"result": 42}
        crashed = await client.call_tool("calc_crash", {})
        assert crashed.is_error is True
        assert "closed the connection" in crashed.content[0].text
        again = await client.call_tool("calc_add", {"a": 1, "b": 2})
        assert again.structured_content == {"result": 3}
    statuses = [row.status for row in await sync_to_async(_executions)()]
    assert statuses == ["succeeded", "failed", "succeeded"]
