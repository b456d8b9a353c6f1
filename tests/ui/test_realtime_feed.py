"""Notifications are fed from committed events only, and the registry refuses bad topics."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from lumina.kernel.bus import publish as publish_one
from lumina.ui.realtime import topics
from tests.ui.realtime_support import (
    connect_with_token,
    developer_with_token,
    publish,
    subscribe,
    tool_run,
)


class _RolledBack(Exception):
    pass


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_an_event_of_a_rolled_back_transaction_is_never_pushed():
    user, secret = await developer_with_token()
    client = await connect_with_token(secret)
    await subscribe(client, "tools")

    def rolled_back():
        try:
            with transaction.atomic():
                publish_one(tool_run(user.pk, "rolled_back"))
                raise _RolledBack
        except _RolledBack:
            pass

    await sync_to_async(rolled_back)()
    await publish(tool_run(user.pk, "committed"))

    assert (await client.receive())["data"]["tool_name"] == "committed"
    await client.receive_nothing(timeout=0.2)
    await client.disconnect()


@pytest.mark.parametrize(
    ("topic", "problem"),
    [
        (topics.Topic("Bad Name", "x.read", topics.Audience.SHARED, "."), "lower-case"),
        (topics.Topic("n" * 25, "x.read", topics.Audience.SHARED, "."), "up to 24"),
        (topics.Topic("k", "x.read", topics.Audience.SHARED, ".", keyed=True), "resource type"),
    ],
    ids=[
        "a name that cannot be a group name",
        "a name too long for a group name",
        "a keyed topic nobody can check",
    ],
)
def test_the_registry_refuses_a_topic_it_could_not_serve_safely(topic, problem):
    with pytest.raises(ValueError, match=problem):
        topics.register(topic)
    assert topic.name not in topics.registered()


def _notification(topic: str, **whose):
    import uuid

    from lumina.ui.realtime.fanout import Notification

    return Notification(
        topic=topic, event="x.Y", event_id=uuid.uuid4(), occurred_at="", data={}, **whose
    )


def test_a_personal_notification_goes_to_its_users_and_never_to_a_topic_group():
    import uuid

    from lumina.ui.realtime.fanout import groups_of, token_group, topic_group, user_group

    user, token = uuid.uuid4(), uuid.uuid4()
    assert groups_of(_notification("tools", users=(user,))) == [user_group(user)]
    assert groups_of(_notification("budgets", tokens=(token,))) == [token_group(token)]
    assert groups_of(_notification("tools")) == []  # naming nobody: delivered to nobody
    assert groups_of(_notification("circuits")) == [topic_group("circuits")]


def test_the_longest_topic_and_key_still_make_a_valid_group_name():
    from channels.layers import BaseChannelLayer

    from lumina.ui.realtime.fanout import topic_group

    registered = topics.register(
        topics.Topic(
            "n" * 24, "x.read", topics.Audience.SHARED, ".", keyed=True, resource_type="a.b"
        )
    )
    try:
        subscription = f"{registered.name}:{'k' * 64}"
        assert not isinstance(topics.parse(subscription), topics.Refusal)
        assert BaseChannelLayer().require_valid_group_name(topic_group(subscription))
    finally:
        topics._topics.pop(registered.name)


@pytest.mark.asyncio
async def test_a_push_through_redis_skips_the_groups_nobody_joined_and_reaches_the_rest(
    monkeypatch,
):
    import uuid

    from channels_redis.core import RedisChannelLayer

    from lumina.ui.realtime import fanout

    prefix = f"test-fanout-{uuid.uuid4().hex}"
    layer = RedisChannelLayer(hosts=["redis://127.0.0.1:6379/0"], prefix=prefix)
    monkeypatch.setattr(fanout, "get_channel_layer", lambda: layer)
    sent = []
    real_send = layer.group_send

    async def group_send(group, message):
        sent.append(group)
        await real_send(group, message)

    monkeypatch.setattr(layer, "group_send", group_send)
    channel = await layer.new_channel()
    await layer.group_add("rt.joined", channel)
    message = {"type": fanout.EVENT_MESSAGE, "topic": "tools", "text": "{}"}
    try:
        await fanout._Sender()._send(
            [("rt.nobody", message), ("rt.joined", message), ("rt.left", message)]
        )
        received = await asyncio.wait_for(layer.receive(channel), timeout=5)
    finally:
        await layer.flush()  # this test's keys (its own prefix)

    assert sent == ["rt.joined"]
    assert received["text"] == "{}"
