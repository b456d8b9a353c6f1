"""``manage.py tools list|add|run|results``."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from lumina.tools.models import Execution, Tool
from tests.tools.factories import ADD_INPUT, ADD_SOURCE, python_tool

pytestmark = pytest.mark.django_db


def _call(*args: str) -> str:
    out = io.StringIO()
    call_command("tools", *args, stdout=out)
    return out.getvalue()


def test_add_a_python_tool_from_a_file_then_list_it(tmp_path):
    source = tmp_path / "add.py"
    source.write_text(ADD_SOURCE)
    printed = _call(
        "add", "adder", "--kind", "python", "--source", str(source),
        "--input-schema", json.dumps(ADD_INPUT), "--description", "Adds.",
    )  # fmt: skip
    assert printed.startswith("Registered adder (python) v1")
    listed = _call("list")
    assert "adder" in listed
    assert "python" in listed
    exported = json.loads(_call("list", "--format", "openai"))
    assert exported[0]["function"]["parameters"] == ADD_INPUT


def test_add_with_a_broken_schema_fails_naming_it_and_registers_nothing(tmp_path):
    source = tmp_path / "add.py"
    source.write_text(ADD_SOURCE)
    with pytest.raises(CommandError, match="builtin_name"):
        _call("add", "x", "--kind", "builtin", "--builtin", "nope")
    with pytest.raises(CommandError, match="--input-schema: not JSON"):
        _call("add", "x", "--kind", "python", "--source", "/dev/null", "--input-schema", "{]")
    with pytest.raises(CommandError, match="input_schema"):
        _call(
            "add", "x", "--kind", "python", "--source", str(source),
            "--input-schema", '{"type": "object", "properties": 3}',
        )  # fmt: skip
    assert not Tool.objects.exists()


def test_run_prints_the_execution_and_results_lists_it():
    python_tool("adder")
    done = json.loads(_call("run", "adder", "--args", '{"a": 1, "b": 2}'))
    assert (done["status"], done["result"]) == ("succeeded", {"sum": 3})
    assert "adder" in _call("results")
    assert json.loads(_call("results", done["id"]))["result"] == {"sum": 3}


def test_a_run_with_bad_arguments_fails_and_is_recorded():
    python_tool("adder")
    with pytest.raises(CommandError, match="arguments"):
        _call("run", "adder", "--args", '{"a": "x"}')
    assert Execution.objects.get().status == "rejected"
    with pytest.raises(CommandError, match="not JSON"):
        _call("run", "adder", "--args", "{a: 1}")
    with pytest.raises(CommandError, match="not an execution id"):
        _call("results", "zzz")
