"""How many statements one synchronous run costs: a bound that catches an N+1 creeping in."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lumina.tools.services.executions import execute
from tests.tools.conftest import actor_of_user
from tests.tools.factories import builtin_tool

pytestmark = pytest.mark.django_db


def test_a_builtin_run_takes_a_bounded_number_of_statements(developer):
    builtin_tool("text_stats", name="stats")
    actor = actor_of_user(developer)
    execute(actor=actor, tool="stats", arguments={"text": "warm"})  # caches filled
    with CaptureQueriesContext(connection) as queries:
        done = execute(actor=actor, tool="stats", arguments={"text": "a b"})
    assert done.status == "succeeded"
    statements = [q["sql"].split()[0] for q in queries.captured_queries]
    assert len(statements) <= 12, statements
