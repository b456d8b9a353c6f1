"""Builtins: a pluggable table; each runs as the person who asked, and its refusals and
crashes are recorded failures."""

from __future__ import annotations

import pytest

from lumina.kernel.errors import PermissionDeniedError
from lumina.tools import builtins
from lumina.tools.services.executions import execute
from tests.tools.conftest import actor_of_user, client_for
from tests.tools.factories import builtin_tool

pytestmark = pytest.mark.django_db

SCHEMA = {"type": "object", "properties": {}, "additionalProperties": False}


@pytest.fixture
def whoami():
    def run(arguments, actor):
        if actor.user_id is None:
            raise PermissionDeniedError("People only.")
        return {"user_id": str(actor.user_id)}

    def crash(arguments, actor):
        raise RuntimeError("internal detail /etc/secret")

    builtins.register(builtins.Builtin("whoami", "Who is asking.", SCHEMA, None, run))
    builtins.register(builtins.Builtin("crash", "Fails.", SCHEMA, None, crash))
    yield
    builtins._builtins.pop("whoami")
    builtins._builtins.pop("crash")


def test_a_registered_builtin_is_offered_and_runs_as_the_caller(whoami, developer):
    listed = client_for(developer).get("/api/v1/tools/builtins").json()
    assert "whoami" in [builtin["name"] for builtin in listed]
    builtin_tool("whoami", name="me")
    done = execute(actor=actor_of_user(developer), tool="me", arguments={})
    assert done.result == {"user_id": str(developer.pk)}


def test_a_builtin_s_refusal_and_crash_are_recorded_failures_without_details(whoami, developer):
    builtin_tool("crash", name="boom")
    done = execute(actor=actor_of_user(developer), tool="boom", arguments={})
    assert (done.status, done.error_code, done.error) == (
        "failed",
        "crashed",
        "The builtin failed.",
    )
    assert "/etc/secret" not in done.error


def test_memory_search_finds_the_caller_s_memories_and_never_another_s(
    developer, other_developer, nobody
):
    from lumina.memory import api as memory_api

    memory_api.turn_record(
        actor=actor_of_user(developer), text="My sister Ines moved to Lisbon.", speaker="user"
    )
    memory_api.turn_record(
        actor=actor_of_user(other_developer), text="The vault code is 4711.", speaker="user"
    )
    builtin_tool("memory_search", name="recall")

    mine = execute(actor=actor_of_user(developer), tool="recall", arguments={"query": "Lisbon"})
    assert mine.status == "succeeded"
    assert [hit["text"] for hit in mine.result][:1] == ["My sister Ines moved to Lisbon."]
    assert all("4711" not in hit["text"] for hit in mine.result)

    theirs = execute(
        actor=actor_of_user(developer), tool="recall", arguments={"query": "vault code"}
    )
    assert all("4711" not in hit["text"] for hit in theirs.result)

    with pytest.raises(PermissionDeniedError):
        execute(actor=actor_of_user(nobody), tool="recall", arguments={"query": "Lisbon"})
