"""Long runs: 202 with the pending execution, run from the RunToolExecution command, polled."""

from __future__ import annotations

import time

import pytest

from lumina.kernel.models import OutboxEvent
from lumina.tools.models import Execution
from lumina.tools.services.executions import execution_claim, execution_run_claimed
from tests.tools.conftest import client_for
from tests.tools.factories import builtin_tool, python_tool

pytestmark = pytest.mark.django_db(transaction=True)


def _poll(client, location: str, *, attempts: int = 200) -> dict:
    """The execution once finished (a bounded wait: the run happens on a worker thread)."""
    for _ in range(attempts):
        body = client.get(location).json()
        if body["status"] not in ("pending", "running"):
            return body
        time.sleep(0.05)
    pytest.fail(f"the execution did not finish: {body}")


def test_asking_for_the_background_answers_202_and_the_result_can_be_polled(developer):
    python_tool("adder")
    client = client_for(developer)
    response = client.post(
        "/api/v1/tools/execute",
        {"tool": "adder", "arguments": {"a": 20, "b": 22}, "asynchronous": True},
        format="json",
    )
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "pending"
    location = response.headers["Location"]
    assert location == f"/api/v1/tools/results/{response.json()['id']}"
    done = _poll(client, location)
    assert (done["status"], done["result"]) == ("succeeded", {"sum": 42})
    assert OutboxEvent.objects.filter(name="tools.RunToolExecution").count() == 1
    assert OutboxEvent.objects.filter(name="tools.ToolExecuted").count() == 1


def test_a_tool_with_a_long_timeout_goes_to_the_background_by_itself(developer, settings):
    settings.LUMINA_TOOLS_SYNC_SECONDS = 1
    python_tool("adder", timeout_seconds=5)
    client = client_for(developer)
    response = client.post(
        "/api/v1/tools/execute", {"tool": "adder", "arguments": {"a": 1, "b": 1}}, format="json"
    )
    assert response.status_code == 202
    assert _poll(client, response.headers["Location"])["result"] == {"sum": 2}


def test_a_pending_execution_runs_once_however_often_it_is_delivered(developer):
    builtin_tool("text_stats", name="stats")
    row = Execution.objects.create(
        tool_id=None, tool_name="stats", tool_version=1, status="pending", arguments={"text": "a"}
    )
    assert execution_claim(row.id) is True
    assert execution_claim(row.id) is False


def test_a_tool_removed_before_its_turn_is_recorded_as_failed(developer):
    row = Execution.objects.create(
        tool_id=None, tool_name="gone", tool_version=1, status="running", arguments={}
    )
    execution_run_claimed(row.id)
    row.refresh_from_db()
    assert (row.status, row.error_code) == ("failed", "removed")


def test_another_user_cannot_poll_someone_elses_run(developer, other_developer):
    python_tool("adder")
    response = client_for(developer).post(
        "/api/v1/tools/execute",
        {"tool": "adder", "arguments": {"a": 1, "b": 2}, "asynchronous": True},
        format="json",
    )
    _poll(client_for(developer), response.headers["Location"])
    stranger = client_for(other_developer).get(response.headers["Location"])
    assert stranger.status_code == 404
