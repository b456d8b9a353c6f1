"""The MCP client against a real MCP server process (stdio and streamable HTTP)."""

from __future__ import annotations

import pytest

from lumina.tools.mcp.client import call_tool, list_tools
from lumina.tools.mcp.types import McpEndpoint, McpUnavailable
from tests.tools.mcp_servers.process import ROOT, http_server, stdio_command

pytestmark = pytest.mark.asyncio

STDIO = McpEndpoint("stdio", command=stdio_command(), cwd=str(ROOT))


@pytest.fixture(scope="module")
def http_url():
    with http_server() as url:
        yield url


async def test_lists_the_tools_of_a_stdio_server_with_their_schemas():
    tools = {tool.name: tool for tool in await list_tools(STDIO, timeout_seconds=30)}
    assert {"add", "echo", "fail", "crash", "hang", "big"} <= set(tools)
    assert tools["add"].input_schema["required"] == ["a", "b"]
    assert tools["add"].input_schema["properties"]["a"]["type"] == "integer"
    assert tools["add"].description == "Add two integers."


async def test_calls_a_stdio_tool_and_returns_its_structured_result():
    outcome = await call_tool(STDIO, "add", {"a": 2, "b": 40}, timeout_seconds=30)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.result == {"result": 42}
    assert outcome.content[0]["text"] == "42"


async def test_a_tool_error_is_reported_with_the_servers_message():
    outcome = await call_tool(STDIO, "fail", {"reason": "boom"}, timeout_seconds=30)
    assert outcome.status == "tool_error"
    assert "fail" in outcome.error
    assert outcome.result is None


async def test_a_server_that_crashes_mid_call_is_a_crashed_outcome_not_an_exception():
    outcome = await call_tool(STDIO, "crash", {}, timeout_seconds=30)
    assert outcome.status == "crashed"
    assert "closed the connection" in outcome.error


async def test_a_server_that_never_answers_times_out_and_the_process_is_gone():
    outcome = await call_tool(STDIO, "hang", {}, timeout_seconds=3)
    assert outcome.status == "timeout"
    assert "did not answer within 3 s" in outcome.error
    # The next call starts a fresh server and works.
    again = await call_tool(STDIO, "add", {"a": 1, "b": 1}, timeout_seconds=30)
    assert again.result == {"result": 2}


async def test_an_answer_over_the_output_limit_is_refused():
    outcome = await call_tool(STDIO, "big", {"size": 50_000}, timeout_seconds=30, max_bytes=10_000)
    assert outcome.status == "too_large"
    assert outcome.result is None
    small = await call_tool(STDIO, "big", {"size": 100}, timeout_seconds=30, max_bytes=10_000)
    assert small.status == "succeeded"


async def test_a_command_that_does_not_exist_fails_without_naming_its_arguments():
    endpoint = McpEndpoint("stdio", command=["/nonexistent/server", "--token=secret-value"])
    outcome = await call_tool(endpoint, "add", {}, timeout_seconds=5)
    assert outcome.status == "failed"
    assert "server could not be started" in outcome.error
    assert "secret-value" not in outcome.error


async def test_the_stdio_server_does_not_inherit_luminas_environment(monkeypatch):
    monkeypatch.setenv("LUMINA_SECRET_FOR_TEST", "do-not-leak")
    endpoint = McpEndpoint(
        "stdio",
        command=stdio_command("tests.tools.mcp_servers.environment"),
        cwd=str(ROOT),
        env={"GIVEN": "given-value"},
    )
    outcome = await call_tool(endpoint, "environment", {}, timeout_seconds=30)
    assert outcome.status == "succeeded", outcome.error
    names = outcome.result["result"]
    assert "GIVEN" in names  # what the server was given is there to be seen
    assert "LUMINA_SECRET_FOR_TEST" not in names


async def test_lists_and_calls_over_streamable_http(http_url):
    endpoint = McpEndpoint("http", url=http_url)
    assert "add" in {tool.name for tool in await list_tools(endpoint)}
    outcome = await call_tool(endpoint, "echo", {"word": "hi", "times": 3}, timeout_seconds=30)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.result == {"result": "hi hi hi"}


async def test_http_crash_mid_call_is_recorded_and_does_not_raise(http_url):
    # A crash kills the whole HTTP server process: use one of its own.
    with http_server() as url:
        outcome = await call_tool(McpEndpoint("http", url=url), "crash", {}, timeout_seconds=10)
    assert outcome.status in ("crashed", "failed")
    assert outcome.result is None


async def test_http_answer_larger_than_the_byte_cap_is_cut_off(http_url):
    endpoint = McpEndpoint("http", url=http_url)
    outcome = await call_tool(
        endpoint, "big", {"size": 400_000}, timeout_seconds=30, max_bytes=20_000
    )
    assert outcome.status == "too_large"


async def test_http_to_a_metadata_address_is_refused_at_connect_time():
    endpoint = McpEndpoint("http", url="http://169.254.169.254/mcp")
    outcome = await call_tool(endpoint, "add", {}, timeout_seconds=5)
    assert outcome.status == "refused"
    assert "cloud metadata" in outcome.error


async def test_http_to_loopback_is_refused_when_the_operator_does_not_allow_it(http_url, settings):
    settings.LUMINA_OUTBOUND_ALLOW = []
    outcome = await call_tool(
        McpEndpoint("http", url=http_url), "add", {"a": 1, "b": 2}, timeout_seconds=5
    )
    assert outcome.status == "refused"
    assert "loopback" in outcome.error


async def test_listing_an_unreachable_server_raises_mcp_unavailable():
    with pytest.raises(McpUnavailable) as caught:
        await list_tools(McpEndpoint("http", url="http://127.0.0.1:9/mcp"), timeout_seconds=5)
    assert caught.value.status == 502
