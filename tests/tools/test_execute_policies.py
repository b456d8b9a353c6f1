"""What roles allow, Cedar policies may forbid per tool; background runs on a Celery worker
run where the command is delivered."""

from __future__ import annotations

import pytest

from lumina.security.services.policies import policy_create
from lumina.tools.models import Execution
from lumina.tools.services import executions
from tests.tools.conftest import SYSTEM, client_for
from tests.tools.factories import builtin_tool

pytestmark = pytest.mark.django_db

NO_HTTP_OR_STATS_FOR_DEVELOPERS = """
forbid (principal, action == Lumina::Action::"tools.execute", resource)
when { principal.roles.contains("Developer") && resource.name == "stats" };
"""


def test_a_policy_forbids_one_tool_to_developers_and_the_refusal_is_recorded(developer):
    builtin_tool("text_stats", name="stats")
    builtin_tool("text_stats", name="other")
    policy_create(actor=SYSTEM, name="No stats", cedar_text=NO_HTTP_OR_STATS_FOR_DEVELOPERS)
    client = client_for(developer)
    refused = client.post(
        "/api/v1/tools/execute", {"tool": "stats", "arguments": {"text": "a"}}, format="json"
    )
    assert refused.status_code == 403
    allowed = client.post(
        "/api/v1/tools/execute", {"tool": "other", "arguments": {"text": "a"}}, format="json"
    )
    assert allowed.json()["status"] == "succeeded"
    assert list(Execution.objects.order_by("created_at").values_list("tool_name", "status")) == [
        ("stats", "rejected"),
        ("other", "succeeded"),
    ]


def test_on_a_celery_worker_a_claimed_run_runs_in_the_worker_after_the_claim_commits(
    developer, settings, django_capture_on_commit_callbacks
):
    settings.LUMINA_EVENT_TRANSPORT = "celery"
    builtin_tool("text_stats", name="stats")
    row = Execution.objects.create(
        tool_id=builtin_tool("text_stats", name="stats2").id,
        tool_name="stats2",
        tool_version=1,
        status="pending",
        arguments={"text": "one two"},
        actor_id=developer.pk,
    )
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        executions.execution_start_pending(row.id)
        row.refresh_from_db()
        assert row.status == "running"  # claimed, not yet run
    assert len(callbacks) >= 1
    row.refresh_from_db()
    assert (row.status, row.result["words"]) == ("succeeded", 2)
    # Delivered again: already claimed, nothing runs twice.
    with django_capture_on_commit_callbacks(execute=True) as again:
        executions.execution_start_pending(row.id)
    assert again == []
