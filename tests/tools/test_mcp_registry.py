"""Registering MCP servers and importing their tools (service and REST), by role."""

from __future__ import annotations

import sys

import pytest

from lumina.kernel.errors import ApplicationError
from lumina.kernel.models import OutboxEvent
from lumina.security.models import DataKey
from lumina.tools.mcp.types import McpUnavailable
from lumina.tools.models import McpServer, Tool
from lumina.tools.services.mcp import (
    lumina_tool_name,
    mcp_server_delete,
    mcp_server_register,
    mcp_server_update,
    mcp_tools_import,
)
from tests.tools.conftest import SYSTEM, actor_of_user
from tests.tools.mcp_servers.process import script_command

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def stdio_allowed(settings):
    settings.LUMINA_MCP_STDIO_COMMANDS = (sys.executable,)


def _calculator(name: str = "calc", **overrides):
    values = {"name": name, "transport": "stdio", "command": script_command()}
    values.update(overrides)
    return mcp_server_register(actor=SYSTEM, **values)


def test_importing_a_stdio_server_creates_one_mcp_tool_per_tool_with_its_schemas():
    server = _calculator(env={"CALCULATOR_TOOLS": "add,echo"})
    report = mcp_tools_import(actor=SYSTEM, server=server.id)
    assert sorted(report.created) == ["calc_add", "calc_echo"]
    add = Tool.objects.get(name="calc_add")
    assert add.kind == "mcp"
    assert add.mcp_server_id == server.id
    version = add.versions.get()
    assert version.mcp_tool_name == "add"
    assert version.input_schema["required"] == ["a", "b"]
    assert version.output_schema["properties"]["result"]["type"] == "integer"
    assert version.description == "Add two integers."
    assert version.timeout_seconds == server.timeout_seconds
    assert report.server.tool_names == ("calc_add", "calc_echo")
    assert report.server.last_synced_at is not None


def test_reimporting_keeps_unchanged_tools_and_disables_those_no_longer_offered():
    server = _calculator(env={"CALCULATOR_TOOLS": "add,echo"})
    mcp_tools_import(actor=SYSTEM, server=server.id)
    again = mcp_tools_import(actor=SYSTEM, server="calc")
    assert sorted(again.unchanged) == ["calc_add", "calc_echo"]
    assert again.created == ()
    assert again.disabled == ()
    assert Tool.objects.get(name="calc_add").version == 1

    mcp_server_update(actor=SYSTEM, server=server.id, env={"CALCULATOR_TOOLS": "add,big"})
    third = mcp_tools_import(actor=SYSTEM, server=server.id)
    assert third.created == ("calc_big",)
    assert third.disabled == ("calc_echo",)
    assert not Tool.objects.get(name="calc_echo").enabled

    mcp_server_update(actor=SYSTEM, server=server.id, env={"CALCULATOR_TOOLS": "add,echo,big"})
    fourth = mcp_tools_import(actor=SYSTEM, server=server.id)
    assert "calc_echo" in fourth.updated  # enabled again
    assert Tool.objects.get(name="calc_echo").enabled


def test_a_tool_whose_name_is_taken_by_another_tool_is_skipped_not_overwritten():
    from tests.tools.factories import python_tool

    python_tool(name="calc_add")
    server = _calculator(env={"CALCULATOR_TOOLS": "add,echo"})
    report = mcp_tools_import(actor=SYSTEM, server=server.id)
    assert report.created == ("calc_echo",)
    assert report.skipped[0][0] == "add"
    assert Tool.objects.get(name="calc_add").kind == "python"


def test_the_environment_is_sealed_and_the_server_dto_shows_no_secret():
    server = _calculator(env={"API_KEY": "sk-very-secret-value"})
    row = McpServer.objects.get(id=server.id)
    assert row.env_secret
    assert "sk-very-secret-value" not in row.env_secret
    assert DataKey.objects.filter(owner=row.secret_owner).exists()
    assert server.has_env is True
    assert "sk-very-secret-value" not in repr(server)
    mcp_server_delete(actor=SYSTEM, server=server.id)
    assert not McpServer.objects.exists()
    assert OutboxEvent.objects.filter(name="tools.McpServerRemoved").count() == 1


def test_a_program_the_operator_did_not_list_is_refused(settings):
    settings.LUMINA_MCP_STDIO_COMMANDS = ()
    with pytest.raises(ApplicationError) as caught:
        _calculator()
    assert caught.value.status == 400
    assert "command" in caught.value.fields
    assert not McpServer.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"transport": "http", "command": None, "url": "http://169.254.169.254/mcp"}, "url"),
        ({"transport": "http", "command": None, "url": "file:///etc/passwd"}, "url"),
        ({"transport": "http", "command": None, "url": "http://10.0.0.1/mcp"}, "url"),
        ({"transport": "carrier-pigeon"}, "transport"),
        ({"command": []}, "command"),
        ({"command": "python server.py"}, "command"),
        ({"env": {"BAD NAME": "x"}}, "env"),
        ({"env": {"OK": "line\nbreak"}}, "env"),
        ({"name": "has space"}, "name"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        (
            {
                "transport": "http",
                "command": None,
                "url": "http://127.0.0.1:9/mcp",
                "headers": {"Host": "evil"},
            },
            "headers",
        ),
    ],
)
def test_bad_registrations_are_400s_naming_the_field(overrides, field):
    with pytest.raises(ApplicationError) as caught:
        _calculator(**overrides)
    assert caught.value.status == 400, caught.value
    assert field in caught.value.fields
    assert not McpServer.objects.exists()


def test_importing_an_unreachable_server_is_a_502_and_records_the_error():
    server = mcp_server_register(
        actor=SYSTEM,
        name="gone",
        transport="http",
        url="http://127.0.0.1:9/mcp",
        timeout_seconds=5,
    )
    with pytest.raises(McpUnavailable):
        mcp_tools_import(actor=SYSTEM, server=server.id)
    assert "could not be reached" in McpServer.objects.get(id=server.id).last_error
    assert not Tool.objects.exists()


@pytest.mark.parametrize("role", [None, "Viewer", "Developer"])
def test_only_tools_manage_may_register_import_or_remove(user_factory, role):
    actor = actor_of_user(user_factory(role=role))
    with pytest.raises(ApplicationError) as caught:
        _calculator_as(actor)
    assert caught.value.status == 403
    server = _calculator()
    for attempt in (
        lambda: mcp_tools_import(actor=actor, server=server.id),
        lambda: mcp_server_update(actor=actor, server=server.id, enabled=False),
        lambda: mcp_server_delete(actor=actor, server=server.id),
    ):
        with pytest.raises(ApplicationError) as caught:
            attempt()
        assert caught.value.status == 403
    assert McpServer.objects.get(id=server.id).enabled


def _calculator_as(actor):
    return mcp_server_register(
        actor=actor, name="mine", transport="stdio", command=script_command()
    )


def test_staff_without_a_role_may_not_register(staff):
    with pytest.raises(ApplicationError) as caught:
        _calculator_as(actor_of_user(staff))
    assert caught.value.status == 403


def test_lumina_tool_names_keep_to_the_allowed_characters():
    assert lumina_tool_name("git", "read.file/v2") == "git_read_file_v2"
    assert len(lumina_tool_name("s" * 60, "tool")) == 64
