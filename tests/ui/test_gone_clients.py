"""A client that vanishes while a message is on its way to it is still cleaned up.

uvicorn, on losing a connection, queues ``websocket.disconnect`` and from then on raises
``ClientDisconnected`` from every send. A consumer that writes to the socket before it reads
that message must not die of the error: its disconnect has to run, or the room keeps the
member and its presence, and a realtime connection keeps re-checking itself forever.
"""

from __future__ import annotations

import asyncio
import contextvars

import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from pycrdt import Awareness, Doc, YMessageType, create_awareness_message
from uvicorn.protocols.utils import ClientDisconnected

from lumina.ui.consumers.protocol import parse
from tests.ui.realtime_support import (
    APP,
    WAIT,
    developer_with_token,
    make_user,
    publish,
    token_for,
    tool_run,
)


class Socket(ApplicationCommunicator):
    """One raw ASGI websocket whose client can vanish as uvicorn reports it."""

    def __init__(self, path: str, secret: str) -> None:
        super().__init__(
            APP,
            {
                "type": "websocket",
                "path": path,
                "headers": [
                    (b"host", b"127.0.0.1"),
                    (b"authorization", f"Bearer {secret}".encode()),
                ],
                "query_string": b"",
                "subprotocols": [],
                "client": ("127.0.0.1", 50000),
            },
        )
        self.gone = False
        self.refused = asyncio.Event()

    @property
    def future(self):
        if self._future is None:
            self._future = contextvars.Context().run(
                asyncio.create_task,
                self.application(self.scope, self.input_queue.get, self._send),
            )
        return self._future

    async def _send(self, message: dict) -> None:
        if self.gone:
            self.refused.set()
            raise ClientDisconnected
        await self.output_queue.put(message)

    async def connect(self) -> None:
        await self.send_input({"type": "websocket.connect"})
        answer = await self.receive_output(WAIT)
        assert answer["type"] == "websocket.accept", answer

    def vanish(self) -> None:
        self.gone = True

    async def refused_a_send(self) -> None:
        await asyncio.wait_for(self.refused.wait(), WAIT)

    async def disconnected(self) -> None:
        """Deliver the disconnect and wait for the consumer to end; raises what it raised."""
        await self.send_input({"type": "websocket.disconnect", "code": 1006})
        await self.wait(WAIT)


def presence(state: dict) -> tuple[int, bytes]:
    """A client id and an awareness frame announcing ``state`` (clock 1: a clock 0 state of
    an unknown client is ignored by Yjs peers)."""
    awareness = Awareness(Doc())
    awareness.set_local_state({})
    awareness.set_local_state(state)
    update = awareness.encode_awareness_update([awareness.client_id])
    return awareness.client_id, create_awareness_message(update)


async def presence_seen_by(socket: Socket, view: Awareness, until) -> None:
    """Apply the awareness frames ``socket`` receives to ``view`` until ``until(view)``."""
    while not until(view):
        message = await socket.receive_output(WAIT)
        frame = message.get("bytes")
        if frame is not None and frame[0] == YMessageType.AWARENESS:
            view.apply_awareness_update(parse(frame).payload, "server")


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_document_client_that_vanished_mid_send_leaves_and_its_presence_goes():
    def setup():
        from lumina.security.api import Actor
        from lumina.ui.models import Document
        from lumina.ui.services.documents import document_share

        owner, editor = make_user(), make_user()
        document = Document.objects.create(title="Notes", owner_id=owner.pk)
        document_share(
            actor=Actor.for_user(owner, mfa_verified=False),
            document_id=document.id,
            principal=editor.email,
            permission="edit",
        )
        return document.id, token_for(owner), token_for(editor)

    document_id, owner_secret, editor_secret = await sync_to_async(setup)()
    path = f"/ws/documents/{document_id}/"
    a, b = Socket(path, owner_secret), Socket(path, editor_secret)
    await a.connect()
    await b.connect()

    a_id, a_frame = presence({"user": "ada"})
    await a.send_input({"type": "websocket.receive", "bytes": a_frame})
    seen_by_b = Awareness(Doc())
    await presence_seen_by(b, seen_by_b, lambda view: a_id in view.states)

    # a's connection is lost; before its disconnect is read, b's presence is relayed to it.
    a.vanish()
    _, b_frame = presence({"user": "bob"})
    await b.send_input({"type": "websocket.receive", "bytes": b_frame})
    await a.refused_a_send()
    await a.disconnected()

    await presence_seen_by(b, seen_by_b, lambda view: a_id not in view.states)
    await b.disconnected()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_realtime_client_that_vanished_mid_event_is_closed_and_stops_rechecking():
    user, secret = await developer_with_token()
    socket = Socket("/ws/realtime/", secret)
    await socket.connect()
    assert (await socket.receive_output(WAIT))["text"].startswith('{"type":"ready"')
    await socket.send_input(
        {"type": "websocket.receive", "text": '{"type":"subscribe","topics":["tools"]}'}
    )
    assert '"subscribed"' in (await socket.receive_output(WAIT))["text"]

    socket.vanish()
    await publish(tool_run(user.pk))
    await socket.refused_a_send()
    await socket.disconnected()

    lingering = [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "").endswith("_keep_checking")
        and not task.done()
    ]
    assert lingering == []
