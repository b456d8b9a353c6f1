"""The documents:<id> topic: readers of a document hear of its changes, nobody else does.

Roles never open someone's document (ADR 0029), so a Viewer's or an Admin's
``documents.read`` does not let them subscribe to a document not shared with them.
"""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import sync_to_async

from lumina.security.types import Actor
from lumina.ui.services.documents import document_create, document_rename, document_share
from tests.ui.realtime_support import connect_with_token, make_user, subscribe, token_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


def _actor(user) -> Actor:
    return Actor.for_user(user)


def _setup():
    owner = make_user(role="Developer")
    reader = make_user()  # no role: only the share
    viewer = make_user(role="Viewer")
    admin = make_user(role="Admin")
    document = document_create(actor=_actor(owner), title="plan")
    other = document_create(actor=_actor(owner), title="not shared")
    document_share(
        actor=_actor(owner), document_id=document.id, principal=str(reader.pk), permission="view"
    )
    return owner, reader, viewer, admin, document, other


async def test_owner_and_sharee_hear_of_a_rename_and_roles_cannot_subscribe():
    owner, reader, viewer, admin, document, other = await sync_to_async(_setup)()
    topic, other_topic = f"documents:{document.id}", f"documents:{other.id}"

    owner_client = await connect_with_token(await sync_to_async(token_for)(owner))
    reader_client = await connect_with_token(await sync_to_async(token_for)(reader))
    assert (await subscribe(owner_client, topic, other_topic))["accepted"] == [topic, other_topic]
    answer = await subscribe(reader_client, topic, other_topic, f"documents:{uuid.uuid4()}")
    assert answer["accepted"] == [topic]
    assert [r["code"] for r in answer["refused"]] == ["forbidden", "forbidden"]

    for outsider in (viewer, admin):
        client = await connect_with_token(await sync_to_async(token_for)(outsider))
        refused = await subscribe(client, topic)
        assert refused["accepted"] == []
        assert refused["refused"][0]["code"] == "forbidden"
        await client.disconnect()

    await sync_to_async(document_rename)(
        actor=_actor(owner), document_id=other.id, title="still private"
    )
    await sync_to_async(document_rename)(actor=_actor(owner), document_id=document.id, title="v2")

    first = await owner_client.receive()
    assert first["topic"] == other_topic
    second = await owner_client.receive()
    assert second["topic"] == topic
    heard = await reader_client.receive()  # the other document's rename never reaches it
    assert heard["topic"] == topic
    assert heard["event"] == "ui.DocumentRenamed"
    assert heard["data"]["title"] == "v2"
    assert heard["data"]["previous_title"] == "plan"
    assert heard["data"]["document_id"] == str(document.id)
    await owner_client.disconnect()
    await reader_client.disconnect()
