"""The MCP server admin pages: add through the services, secrets write-only, import action."""

from __future__ import annotations

import shlex
import sys

import pytest
from django.test import Client

from lumina.tools.models import McpServer, Tool
from tests.tools.conftest import make_user
from tests.tools.mcp_servers.process import script_command

pytestmark = pytest.mark.django_db

ADD = "/admin/tools/mcpserver/add/"
SECRET = "sk-admin-secret-987654321"


@pytest.fixture(autouse=True)
def stdio_allowed(settings):
    settings.LUMINA_MCP_STDIO_COMMANDS = (sys.executable,)


@pytest.fixture
def console():
    client = Client()
    client.force_login(make_user(staff=True, role="Admin"))
    return client


def _form(**overrides):
    form = {
        "name": "calc",
        "transport": "stdio",
        "command_line": shlex.join(script_command()),
        "url": "",
        "enabled": "on",
        "timeout_seconds": "20",
        "new_env": f"CALCULATOR_TOOLS=add,echo\nAPI_KEY={SECRET}",
        "new_headers": "",
    }
    form.update(overrides)
    return form


def test_an_admin_adds_a_server_imports_its_tools_and_never_sees_the_secret(console):
    response = console.post(ADD, _form())
    assert response.status_code == 302, response.content.decode()[-2000:]
    server = McpServer.objects.get(name="calc")
    assert server.command == script_command()
    assert server.env_secret
    assert SECRET not in server.env_secret

    page = console.get(f"/admin/tools/mcpserver/{server.pk}/change/")
    assert page.status_code == 200
    assert "set (encrypted)" in page.content.decode()
    assert SECRET not in page.content.decode()

    done = console.post(
        "/admin/tools/mcpserver/",
        {"action": "import_tools", "_selected_action": [str(server.pk)]},
        follow=True,
    )
    body = done.content.decode()
    assert "Calc: 2 created" in body, body[
        body.find("messagelist") : body.find("messagelist") + 600
    ]
    assert sorted(Tool.objects.values_list("name", flat=True)) == ["calc_add", "calc_echo"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"command_line": "/bin/sh -c id"}, "LUMINA_MCP_STDIO_COMMANDS"),
        ({"command_line": "'unbalanced"}, "Unbalanced quoting"),
        ({"new_env": "NO_EQUALS_SIGN"}, "NAME=VALUE"),
        (
            {
                "transport": "http",
                "command_line": "",
                "new_env": "",
                "url": "http://169.254.169.254/",
            },
            "cloud metadata",
        ),
    ],
)
def test_bad_input_shows_on_the_form_and_saves_nothing(console, overrides, message):
    response = console.post(ADD, _form(**overrides))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not McpServer.objects.exists()


def test_staff_without_tools_manage_cannot_open_the_pages():
    client = Client()
    client.force_login(make_user(staff=True, role="Developer"))
    assert client.get(ADD).status_code == 403
    assert client.post(ADD, _form()).status_code == 403
    assert not McpServer.objects.exists()
