"""The console's tool pages write through the registry services."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from lumina.kernel.models import OutboxEvent
from lumina.tools.models import Execution, Tool, ToolVersion
from tests.tools.conftest import make_user
from tests.tools.factories import ADD_INPUT, ADD_SOURCE, python_tool

pytestmark = pytest.mark.django_db


@pytest.fixture
def console():
    client = Client()
    client.force_login(make_user(staff=True, role="Admin"))
    return client


def _form(**overrides):
    data = {
        "name": "adder", "kind": "python", "enabled": "on", "description": "Adds.",
        "input_schema": json.dumps(ADD_INPUT), "output_schema": "", "source": ADD_SOURCE,
        "http_method": "POST", "timeout_seconds": "5", "memory_mb": "128",
        "output_bytes": "65536", "toolversion_set-TOTAL_FORMS": "0",
        "toolversion_set-INITIAL_FORMS": "0", "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
    }  # fmt: skip
    data.update(overrides)
    return data


def test_a_tool_added_in_the_console_goes_through_the_service(console):
    response = console.post(reverse("admin:tools_tool_add"), _form())
    assert response.status_code == 302, response.content.decode()[-3000:]
    tool = Tool.objects.get(name="adder")
    assert tool.version == 1
    assert ToolVersion.objects.get(tool=tool).timeout_seconds == 5
    assert OutboxEvent.objects.filter(name="tools.ToolRegistered").count() == 1


def test_a_broken_schema_is_shown_on_the_form_and_nothing_saved(console):
    bad = json.dumps({"type": "object", "properties": 3})
    response = console.post(reverse("admin:tools_tool_add"), _form(input_schema=bad))
    assert response.status_code == 200
    assert "input_schema" in response.context["adminform"].form.errors
    assert not Tool.objects.exists()


def test_changing_a_tool_in_the_console_saves_its_next_version(console):
    tool = python_tool("adder")
    source = "def main(a, b):\n    return {'sum': a - -b}\n"
    response = console.post(
        reverse("admin:tools_tool_change", args=[tool.id]),
        _form(source=source, input_schema=json.dumps(ADD_INPUT), output_schema=""),
    )
    assert response.status_code == 302, response.content.decode()[-3000:]
    assert Tool.objects.get(id=tool.id).version == 2
    assert ToolVersion.objects.get(tool_id=tool.id, number=2).source == source


def test_executions_are_read_only_and_one_s_own(console):
    stranger = make_user(role="Developer")
    Execution.objects.create(
        tool_name="x", tool_version=1, status="succeeded", actor_id=stranger.pk
    )
    viewer = Client()
    viewer.force_login(make_user(staff=True, role="Viewer"))
    listed = viewer.get(reverse("admin:tools_execution_changelist"))
    assert listed.status_code == 200
    assert listed.context["cl"].result_count == 0
    assert console.get(reverse("admin:tools_execution_changelist")).context["cl"].result_count == 1
    assert console.get(reverse("admin:tools_execution_add")).status_code == 403
