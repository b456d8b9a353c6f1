"""``manage.py tools import-mcp`` and ``tools mcp-servers`` against a real stdio server."""

from __future__ import annotations

import io
import shlex
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from lumina.tools.models import McpServer, Tool
from tests.tools.mcp_servers.process import script_command

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def stdio_allowed(settings):
    settings.LUMINA_MCP_STDIO_COMMANDS = (sys.executable,)


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command("tools", *args, stdout=out)
    return out.getvalue()


def test_import_mcp_registers_a_stdio_server_and_imports_its_tools():
    command = shlex.join(script_command())
    out = _run("import-mcp", "calc", "--stdio", command, "--env", "CALCULATOR_TOOLS=add,echo")
    assert "registered calc" in out
    assert "created    calc_add" in out
    assert "calc: 2 tools offered, 0 disabled" in out
    assert Tool.objects.get(name="calc_echo").kind == "mcp"

    again = _run("import-mcp", "calc", "--env", "CALCULATOR_TOOLS=add")
    assert "unchanged  calc_add" in again
    assert "disabled   calc_echo" in again

    listed = _run("mcp-servers")
    assert listed.startswith("calc  stdio  enabled  2 tools")
    assert "CALCULATOR_TOOLS" not in listed  # the environment is a secret


def test_import_mcp_refuses_a_program_the_operator_did_not_list(settings):
    settings.LUMINA_MCP_STDIO_COMMANDS = ()
    with pytest.raises(CommandError, match="LUMINA_MCP_STDIO_COMMANDS"):
        _run("import-mcp", "calc", "--stdio", shlex.join(script_command()))
    assert not McpServer.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("import-mcp", "nothing"), "No MCP server named 'nothing'"),
        (("import-mcp", "meta", "--url", "http://169.254.169.254/mcp"), "cloud metadata"),
        (("import-mcp", "calc", "--stdio", "x", "--env", "NOEQUALS"), "NAME=VALUE"),
    ],
)
def test_import_mcp_reports_bad_input_as_a_command_error(args, message):
    with pytest.raises(CommandError, match=message):
        _run(*args)
    assert not McpServer.objects.exists()


def test_import_mcp_of_an_unreachable_server_says_so():
    with pytest.raises(CommandError, match="could not be reached"):
        _run("import-mcp", "gone", "--url", "http://127.0.0.1:9/mcp", "--timeout", "5")
    assert McpServer.objects.get(name="gone").last_error
