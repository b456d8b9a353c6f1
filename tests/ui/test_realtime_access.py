"""Who may subscribe to what on /ws/realtime/, and that nobody receives another's events.

Every caller subscribes to every topic while a victim's usage, budget refusals (of the
user and of their token), tool runs and memories are published with a circuit change
and one tool run of the caller's own, in one transaction. A caller receives exactly the
circuit change (if allowed) and their own run, in that order; an Admin connection
watching circuits proves the batch was pushed before anyone is found to have nothing.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from lumina.security.services.tokens import token_create
from tests.ui.realtime_support import (
    SYSTEM,
    budget_refusal,
    circuit_opened,
    connect_with_token,
    developer_with_token,
    make_user,
    memory_stored,
    publish,
    subscribe,
    token_for,
    tool_run,
    usage_of,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

EVERY_TOPIC = ("usage", "budgets", "circuits", "tools", "memory")

CALLERS = [
    # label, role, staff, token scopes, topics accepted
    ("user without a role", None, False, ("*",), set()),
    ("staff without a role", None, True, ("*",), set()),
    ("Viewer", "Viewer", False, ("*",), set(EVERY_TOPIC)),
    ("Developer", "Developer", False, ("*",), set(EVERY_TOPIC)),
    ("Admin", "Admin", False, ("*",), set(EVERY_TOPIC)),
    ("Developer through a tools-only token", "Developer", False, ("tools.*",), {"tools"}),
]


def _setup(role, staff, scopes):
    victim = make_user(role="Developer")
    victim_token = token_create(user_id=victim.pk, actor=SYSTEM, scopes=["*"])
    caller = make_user(role=role, staff=staff)
    watcher = make_user(role="Admin")
    return victim, victim_token.token.id, caller, token_for(caller, scopes), token_for(watcher)


@pytest.mark.parametrize(
    ("label", "role", "staff", "scopes", "accepted"), CALLERS, ids=[c[0] for c in CALLERS]
)
async def test_a_caller_gets_only_what_is_theirs(label, role, staff, scopes, accepted):
    victim, victim_token, caller, secret, watcher_secret = await sync_to_async(_setup)(
        role, staff, scopes
    )
    watcher = await connect_with_token(watcher_secret)
    assert (await subscribe(watcher, "circuits"))["accepted"] == ["circuits"]
    client = await connect_with_token(secret)

    answer = await subscribe(client, *EVERY_TOPIC)

    assert set(answer["accepted"]) == accepted, answer
    refused = {r["topic"]: r for r in answer["refused"]}
    assert set(refused) == set(EVERY_TOPIC) - accepted
    assert all(r["code"] == "forbidden" and r["reason"] for r in refused.values())

    await publish(
        usage_of(victim.pk, victim_token),
        budget_refusal("user", victim.pk),
        budget_refusal("token", victim_token),
        tool_run(victim.pk, "victims_tool"),
        memory_stored(victim.pk),
        circuit_opened(),
        tool_run(caller.pk, "callers_tool"),
    )

    seen = await watcher.receive()
    assert (seen["type"], seen["topic"]) == ("event", "circuits")  # the batch was pushed
    expected = [t for t in ("circuits", "tools") if t in accepted]
    for topic in expected:
        message = await client.receive()
        assert message["topic"] == topic, message
        if topic == "tools":
            assert message["data"]["tool_name"] == "callers_tool"
    await client.receive_nothing(timeout=0.2)
    await client.disconnect()
    await watcher.disconnect()


async def test_personal_topics_carry_the_subscribers_own_events_of_every_kind():
    def setup():
        user = make_user(role="Developer")
        issued = token_create(user_id=user.pk, actor=SYSTEM, scopes=["*"])
        return user, issued

    user, issued = await sync_to_async(setup)()
    client = await connect_with_token(issued.secret)
    await subscribe(client, *EVERY_TOPIC)

    await publish(
        usage_of(user.pk, issued.token.id),
        budget_refusal("user", user.pk),
        budget_refusal("token", issued.token.id),
        tool_run(user.pk),
        memory_stored(user.pk),
    )

    received = [await client.receive() for _ in range(5)]
    assert [(m["topic"], m["event"]) for m in received] == [
        ("usage", "providers.UsageRecorded"),
        ("budgets", "providers.BudgetExceeded"),
        ("budgets", "providers.BudgetExceeded"),
        ("tools", "tools.ToolExecuted"),
        ("memory", "memory.MemoryStored"),
    ]
    assert received[0]["data"]["output_tokens"] == 5
    assert [m["data"]["scope"] for m in received[1:3]] == ["user", "token"]
    await client.receive_nothing(timeout=0.2)
    await client.disconnect()


async def test_a_token_budget_refusal_reaches_that_token_not_the_users_other_connections():
    def setup():
        user = make_user(role="Developer")
        return user, token_create(user_id=user.pk, actor=SYSTEM, scopes=["*"]), token_for(user)

    user, first, second_secret = await sync_to_async(setup)()
    holder = await connect_with_token(first.secret)
    other = await connect_with_token(second_secret)
    await subscribe(holder, "budgets")
    await subscribe(other, "budgets")

    await publish(budget_refusal("token", first.token.id), budget_refusal("user", user.pk))

    assert (await holder.receive())["data"]["scope"] == "token"
    assert (await holder.receive())["data"]["scope"] == "user"
    # As providers shows budgets: another token of the same user does not see this one's.
    assert (await other.receive())["data"]["scope"] == "user"
    await other.receive_nothing(timeout=0.2)
    await holder.disconnect()
    await other.disconnect()


async def test_after_unsubscribing_a_topic_its_events_stop():
    user, secret = await developer_with_token()
    client = await connect_with_token(secret)
    await subscribe(client, "circuits", "tools", "memory")
    await client.send_json({"type": "unsubscribe", "topics": ["circuits", "memory"]})
    assert (await client.receive_type("unsubscribed"))["topics"] == ["tools"]

    await publish(circuit_opened(), memory_stored(user.pk), tool_run(user.pk))

    assert (await client.receive())["topic"] == "tools"
    await client.receive_nothing(timeout=0.2)
    await client.disconnect()
