"""Warm stdio sessions: reused between calls, replaced after a crash, a hang or a change."""

from __future__ import annotations

import os
import sys

import pytest

from lumina.tools.mcp import pool
from lumina.tools.services.executions import execute
from lumina.tools.services.mcp import mcp_server_register, mcp_server_update, mcp_tools_import
from tests.tools.conftest import SYSTEM
from tests.tools.mcp_servers.process import script_command

pytestmark = pytest.mark.django_db


@pytest.fixture
def calculator(settings):
    settings.LUMINA_MCP_STDIO_COMMANDS = (sys.executable,)
    server = mcp_server_register(
        actor=SYSTEM,
        name="calc",
        transport="stdio",
        command=script_command(),
        env={"CALCULATOR_TAG": "first"},
        timeout_seconds=10,
    )
    mcp_tools_import(actor=SYSTEM, server=server.id)
    yield server
    pool.stop()


def _whoami() -> dict:
    execution = execute(actor=SYSTEM, tool="calc_whoami", arguments={})
    assert execution.status == "succeeded", execution.error
    pid, _, value = execution.result["result"].partition(" ")
    return {"pid": int(pid), "value": value}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_calls_reuse_one_server_process(calculator):
    first = _whoami()
    assert first["value"] == "first"
    assert _whoami()["pid"] == first["pid"]
    assert execute(actor=SYSTEM, tool="calc_add", arguments={"a": 1, "b": 2}).result == {
        "result": 3
    }
    assert _whoami()["pid"] == first["pid"]
    assert pool.open_sessions() == 1


def test_a_crash_retires_the_session_and_the_next_call_starts_a_new_server(calculator):
    before = _whoami()["pid"]
    crashed = execute(actor=SYSTEM, tool="calc_crash", arguments={})
    assert crashed.status == "failed"
    after = _whoami()["pid"]
    assert after != before
    assert not _alive(before)


def test_a_hang_times_out_retires_the_session_and_stops_its_process(calculator):
    before = _whoami()["pid"]
    hung = execute(actor=SYSTEM, tool="calc_hang", arguments={})
    assert hung.status == "timeout"
    assert not _alive(before)
    assert _whoami()["pid"] != before


def test_a_changed_server_gets_a_new_session_with_its_new_environment(calculator):
    before = _whoami()
    mcp_server_update(actor=SYSTEM, server=calculator.id, env={"CALCULATOR_TAG": "second"})
    after = _whoami()
    assert after["value"] == "second"
    assert after["pid"] != before["pid"]
    assert not _alive(before["pid"])


def test_stopping_the_pool_stops_the_servers(calculator):
    pid = _whoami()["pid"]
    pool.stop()
    assert pool.open_sessions() == 0
    assert not _alive(pid)
