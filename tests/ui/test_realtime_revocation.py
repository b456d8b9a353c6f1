"""A revoked token, a deactivated user, a withdrawn permission or an ended session closes
an open /ws/realtime/ connection (4401, or 4403 with the topics it lost), whichever
process made the change: the connection watches the access generation and its user's
group. The wait below only bounds the test; how fast it happens is not asserted."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import Client as HttpClient

from lumina.security.models.rbac import RoleAssignment
from lumina.security.services.rbac import grant_add, grant_remove, role_assignment_delete
from lumina.security.services.sessions import sessions_revoke_user
from lumina.security.services.tokens import token_create, token_revoke
from lumina.ui.consumers import realtime
from lumina.ui.realtime import topics
from tests.ui.realtime_support import (
    APP,
    SYSTEM,
    Client,
    connect_with_token,
    make_user,
    publish,
    scope,
    subscribe,
    tool_run,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


def _developer():
    user = make_user(role="Developer")
    return user, token_create(user_id=user.pk, actor=SYSTEM, scopes=["*"])


async def _subscribed_developer():
    user, issued = await sync_to_async(_developer)()
    client = await connect_with_token(issued.secret)
    assert (await subscribe(client, "tools", "memory"))["accepted"] == ["tools", "memory"]
    # Delivery works before the change: what follows is not a connection that never worked.
    await publish(tool_run(user.pk))
    assert (await client.receive())["topic"] == "tools"
    return user, issued, client


async def test_a_revoked_token_closes_the_connection_with_4401():
    _user, issued, client = await _subscribed_developer()

    await sync_to_async(token_revoke)(token_id=issued.token.id, actor=SYSTEM)

    assert (await client.receive_type("error"))["error"]["code"] == "not_authenticated"
    assert await client.closed() == realtime.CLOSE_UNAUTHENTICATED
    await client.disconnect()


async def test_a_deactivated_user_is_closed_with_4401():
    user, _issued, client = await _subscribed_developer()

    def deactivate():
        user.is_active = False
        user.save()

    await sync_to_async(deactivate)()

    assert await client.closed() == realtime.CLOSE_UNAUTHENTICATED
    await client.disconnect()


async def test_a_withdrawn_role_closes_with_4403_naming_the_topics_lost():
    user, _issued, client = await _subscribed_developer()

    def unassign():
        assignment = RoleAssignment.objects.get(user=user)
        role_assignment_delete(actor=SYSTEM, assignment_id=assignment.pk)

    await sync_to_async(unassign)()

    revoked = await client.receive_type("revoked")
    assert {t["topic"] for t in revoked["topics"]} == {"tools", "memory"}
    assert all(t["code"] == "forbidden" for t in revoked["topics"])
    assert (await client.receive_type("error"))["error"]["code"] == "forbidden"
    assert await client.closed() == realtime.CLOSE_FORBIDDEN
    await client.disconnect()


async def test_ended_sessions_close_their_connections_with_4401():
    def login():
        user = make_user(role="Developer")
        http = HttpClient()
        http.force_login(user)
        return user, http.cookies[settings.SESSION_COOKIE_NAME].value

    user, key = await sync_to_async(login)()
    client = Client(APP, scope([(b"cookie", f"{settings.SESSION_COOKIE_NAME}={key}".encode())]))
    assert await client.connect()
    await client.receive_type("ready")
    await subscribe(client, "tools")

    await sync_to_async(sessions_revoke_user)(actor=SYSTEM, user_id=user.pk)

    assert await client.closed() == realtime.CLOSE_UNAUTHENTICATED
    await client.disconnect()


@pytest.fixture
def notes_topic():
    """A keyed, shared topic as the documents code registers one: object grants count."""
    registered = topics.register(
        topics.Topic(
            name="notes",
            permission="documents.read",
            audience=topics.Audience.SHARED,
            description="A note's changes.",
            keyed=True,
            resource_type="ui.note",
            check=lambda actor, key: "No such note." if key == "missing" else None,
        )
    )
    yield registered
    topics._topics.pop("notes")


async def test_a_keyed_topic_follows_object_grants_and_their_removal(notes_topic):
    from lumina.ui.realtime.fanout import Notification, notify

    def setup():
        reader = make_user()  # no role: only the grant on note n1
        grant_add(
            actor=SYSTEM,
            principal=str(reader.pk),
            action="documents.read",
            resource_type="ui.note",
            resource_id="n1",
        )
        return reader, token_create(user_id=reader.pk, actor=SYSTEM, scopes=["*"]).secret

    reader, secret = await sync_to_async(setup)()
    client = await connect_with_token(secret)

    answer = await subscribe(client, "notes:n1", "notes:n2", "notes:missing", "notes")
    assert answer["accepted"] == ["notes:n1"]
    assert [r["code"] for r in answer["refused"]] == ["forbidden", "forbidden", "invalid_topic"]

    def changed(key):
        import uuid

        from django.db import transaction

        with transaction.atomic():
            notify(
                [
                    Notification(
                        topic=f"notes:{key}",
                        event="ui.NoteChanged",
                        event_id=uuid.uuid4(),
                        occurred_at="2026-01-01T00:00:00+00:00",
                        data={"note": key},
                    )
                ]
            )

    await sync_to_async(changed)("n2")
    await sync_to_async(changed)("n1")
    assert (await client.receive())["data"] == {"note": "n1"}

    await sync_to_async(grant_remove)(
        actor=SYSTEM,
        principal=str(reader.pk),
        action="documents.read",
        resource_type="ui.note",
        resource_id="n1",
    )
    revoked = await client.receive_type("revoked")
    assert [t["topic"] for t in revoked["topics"]] == ["notes:n1"]
    assert await client.closed() == realtime.CLOSE_FORBIDDEN
    await client.disconnect()
