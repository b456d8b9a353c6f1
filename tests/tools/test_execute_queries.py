"""How many statements one synchronous run costs: a bound that catches an N+1 creeping in."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lumina.kernel.models import OutboxEvent
from lumina.tools.models import Execution
from lumina.tools.services.executions import execute
from tests.tools.conftest import actor_of_user
from tests.tools.factories import builtin_tool

pytestmark = pytest.mark.django_db

EXECUTIONS = Execution._meta.db_table


def test_a_builtin_run_takes_a_bounded_number_of_statements(
    developer, django_capture_on_commit_callbacks
):
    builtin_tool("text_stats", name="stats")
    actor = actor_of_user(developer)
    with django_capture_on_commit_callbacks(execute=True):
        execute(actor=actor, tool="stats", arguments={"text": "warm"})  # caches filled
    # The outcome event's delivery (after commit) is counted too.
    with (
        CaptureQueriesContext(connection) as queries,
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        done = execute(actor=actor, tool="stats", arguments={"text": "a b"})
    assert done.status == "succeeded"
    assert callbacks, "the delivery ran inside the count"
    statements = [q["sql"] for q in queries.captured_queries]
    # The tool (1; its version, read by the warm-up run, is kept), the execution and its
    # event in one transaction (4), the delivery of the outcome to its one handler, the
    # realtime push (10: the row locked, marks read, the handler's savepoint, its mark, the
    # row delivered); one more when the authorisation cache checks its generations.
    assert len(statements) <= 16, statements
    writes = [sql for sql in statements if EXECUTIONS in sql.split("(")[0]]
    assert [sql.split()[0] for sql in writes] == ["INSERT"], "a run is written once, when it ends"
    assert OutboxEvent.objects.get(payload__execution_id=str(done.id)).status == "delivered"
