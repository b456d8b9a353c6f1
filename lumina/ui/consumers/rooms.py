"""Sync rooms: one authoritative Yjs document per open document in this process.

A room is loaded from the database when its first client joins and dropped when its last
one leaves. Client updates are applied to the room's document (which validates them),
appended to the database in batches (one transaction for whatever arrived while the
previous batch was being written), and only then relayed: to this process's clients
directly, and to the rooms of other processes through the channel layer group
``ui.document.<id>``, which apply them too. Seqs tell a room when it missed something
(a dropped layer message, an update appended elsewhere); it then reads the gap from the
database. See ADR 0021.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import structlog
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections
from pycrdt import Awareness, Doc, create_awareness_message, create_update_message

from lumina.ui.services import document_state
from lumina.ui.services.content import apply_untrusted

logger = structlog.get_logger(__name__)

GROUP_PREFIX = "ui.document."
# channels-redis forgets group members after a day: rejoin well before.
GROUP_REJOIN_SECONDS = 3600.0
# How often an idle room looks for updates appended without a word to it (another process
# without a shared layer, a lost layer message).
POLL_SECONDS = 1.0
# The server itself has no presence: its awareness' own state is removed.
_NO_LOCAL_STATE = None


def group_name(document_id: uuid.UUID) -> str:
    return f"{GROUP_PREFIX}{document_id.hex}"


class Member(Protocol):
    """A connected client as the room sees it (``consumers.documents``)."""

    awareness_ids: set[int]

    def deliver(self, message: bytes) -> None: ...

    def close_with(self, code: int) -> None: ...


class RoomFullError(Exception):
    pass


def in_thread(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` in a pooled thread (rooms write in parallel, each thread with its own
    connection), its connection checked as a request's is: a broken or expired one is
    replaced rather than failing every later call from that thread."""

    def call(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(call, thread_sensitive=False)


_db = in_thread


class Room:
    def __init__(self, document_id: uuid.UUID) -> None:
        self.document_id = document_id
        self.token = uuid.uuid4().hex  # tells this room's layer messages from others'
        self.doc = Doc()
        self.awareness = Awareness(self.doc)
        self.awareness.set_local_state(_NO_LOCAL_STATE)
        self.members: set[Member] = set()
        self.seq = 0  # the last appended update this room's document includes
        self.closed = False
        self._pending: list[tuple[bytes, Member | None, uuid.UUID | None]] = []
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._since_snapshot = 0
        self._compacting = False
        self._tasks: list[asyncio.Task] = []
        self._compaction: asyncio.Task | None = None
        self._layer = get_channel_layer()
        self._channel: str | None = None
        self._group_joined_at = 0.0

    # --- life -----------------------------------------------------------------------

    async def open(self) -> None:
        loaded = await _db(document_state.state_load_with_seq)(self.document_id)
        self.doc.apply_update(loaded.state)
        self.seq = loaded.seq
        self._since_snapshot = await _db(document_state.updates_since_snapshot)(self.document_id)
        if self._layer is not None:
            self._channel = await self._layer.new_channel()
            await self._join_group()
            self._tasks.append(asyncio.create_task(self._listen()))
        self._tasks.append(asyncio.create_task(self._write()))
        self._tasks.append(asyncio.create_task(self._poll()))

    async def _join_group(self) -> None:
        await self._layer.group_add(group_name(self.document_id), self._channel)
        self._group_joined_at = time.monotonic()

    async def close(self) -> None:
        self.closed = True
        if self._compaction is not None:
            # A snapshot being written is finished, not abandoned with the room.
            with contextlib.suppress(Exception):
                await self._compaction
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._layer is not None and self._channel is not None:
            with contextlib.suppress(Exception):
                await self._layer.group_discard(group_name(self.document_id), self._channel)

    async def drained(self) -> None:
        """Wait until every update accepted so far is in the database."""
        await self._drained.wait()

    # --- updates from this process's clients -----------------------------------------

    def accept_update(self, update: bytes, sender: Member, user_id: uuid.UUID | None) -> None:
        """Apply a client's update (ValueError: not a Yjs update) and queue it for the
        database; it is relayed once stored."""
        apply_untrusted(self.doc, update)
        self._pending.append((update, sender, user_id))
        self._drained.clear()
        self._wakeup.set()

    async def _write(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    seqs = await _db(document_state.updates_append)(
                        document_id=self.document_id,
                        updates=[(update, user_id) for update, _, user_id in batch],
                    )
                except Exception:
                    # The room's document holds updates the database does not: drop the
                    # room; clients reconnect and send them again in their sync step 2.
                    logger.exception("document updates not stored", document=str(self.document_id))
                    self._fail()
                    return
                await self._catch_up(before=seqs[0])
                self.seq = max(self.seq, seqs[-1])
                for update, sender, _ in batch:
                    self._relay(create_update_message(update), exclude=sender)
                stored = [[seq, update] for seq, (update, _, _) in zip(seqs, batch, strict=True)]
                await self._publish({"type": "room.updates", "updates": stored})
                self._since_snapshot += len(batch)
                self._maybe_compact()
            self._drained.set()

    def _fail(self) -> None:
        _forget(self)
        self.closed = True
        for member in list(self.members):
            member.close_with(1011)
        self._drained.set()

    async def _catch_up(self, *, before: int) -> None:
        """Apply and relay updates appended elsewhere that this room has not seen."""
        if before <= self.seq + 1:
            return
        missing = await _db(document_state.updates_since)(self.document_id, after_seq=self.seq)
        for seq, update in missing:
            if seq >= before:
                break
            self._apply_remote(update)
            self.seq = max(self.seq, seq)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            if self._layer is not None and (
                time.monotonic() - self._group_joined_at > GROUP_REJOIN_SECONDS
            ):
                with contextlib.suppress(Exception):
                    await self._join_group()
            if self._pending or not self._drained.is_set():
                continue  # the next append finds any gap
            try:
                latest = await _db(document_state.latest_seq)(self.document_id)
                if latest > self.seq and self._drained.is_set():
                    await self._catch_up(before=latest + 1)
            except Exception:
                logger.warning("poll failed", document=str(self.document_id), exc_info=True)

    def _apply_remote(self, update: bytes) -> None:
        try:
            self.doc.apply_update(update)
        except ValueError:
            logger.error("stored update does not decode", document=str(self.document_id))
            return
        self._relay(create_update_message(update))

    def _maybe_compact(self) -> None:
        if self._compacting or self._since_snapshot < settings.LUMINA_DOCUMENTS_COMPACT_EVERY:
            return
        self._compacting = True

        async def run() -> None:
            try:
                if await _db(document_state.compact)(self.document_id) is not None:
                    self._since_snapshot = 0
            except Exception:
                logger.exception("document compaction failed", document=str(self.document_id))
            finally:
                self._compacting = False

        self._compaction = asyncio.create_task(run())

    # --- awareness ---------------------------------------------------------------------

    def accept_awareness(self, payload: bytes, frame: bytes, sender: Member) -> None:
        """Apply a client's awareness update (ValueError etc.: malformed) and relay it."""
        changes: list[dict] = []
        subscription = self.awareness.observe(
            lambda topic, event: changes.append(event[0]) if topic == "update" else None
        )
        try:
            self.awareness.apply_awareness_update(payload, sender)
        finally:
            self.awareness.unobserve(subscription)
        for change in changes:
            sender.awareness_ids.update(change["added"], change["updated"])
            sender.awareness_ids.difference_update(change["removed"])
        self._relay(frame, exclude=sender)
        self._publish_soon({"type": "room.awareness", "payload": payload})

    def awareness_message(self) -> bytes | None:
        """Every known presence, for a joining client (None: nobody)."""
        client_ids = list(self.awareness.states)
        if not client_ids:
            return None
        return create_awareness_message(self.awareness.encode_awareness_update(client_ids))

    def _remove_awareness(self, client_ids: Iterable[int]) -> None:
        present = [client_id for client_id in client_ids if client_id in self.awareness.states]
        if not present:
            return
        self.awareness.remove_awareness_states(present, "left")
        # States are gone: encoded as null at the same clock, which clients treat as removal.
        payload = self.awareness.encode_awareness_update(present)
        self._relay(create_awareness_message(payload))
        self._publish_soon({"type": "room.awareness", "payload": payload})

    # --- fan-out -------------------------------------------------------------------------

    def _relay(self, message: bytes, exclude: Member | None = None) -> None:
        for member in self.members:
            if member is not exclude:
                member.deliver(message)

    async def _publish(self, message: dict) -> None:
        if self._layer is None:
            return
        try:
            await self._layer.group_send(
                group_name(self.document_id), {**message, "origin": self.token}
            )
        except Exception:
            # Other processes catch up from the database at their next append.
            logger.warning("layer publish failed", document=str(self.document_id), exc_info=True)

    def _publish_soon(self, message: dict) -> None:
        if self._layer is not None:
            self._tasks.append(asyncio.create_task(self._publish(message)))
            self._tasks = [task for task in self._tasks if not task.done()]

    async def _listen(self) -> None:
        while True:
            message = await self._layer.receive(self._channel)
            if message.get("origin") == self.token:
                continue
            try:
                if message["type"] == "room.updates":
                    updates = message["updates"]
                    if updates:
                        await self._catch_up(before=updates[0][0])
                    for seq, update in updates:
                        self._apply_remote(bytes(update))
                        self.seq = max(self.seq, seq)
                elif message["type"] == "room.awareness":
                    self.awareness.apply_awareness_update(bytes(message["payload"]), "remote")
                    self._relay(create_awareness_message(bytes(message["payload"])))
            except Exception:
                logger.exception("bad layer message", document=str(self.document_id))

    # --- members -------------------------------------------------------------------------

    def add(self, member: Member) -> None:
        if len(self.members) >= settings.LUMINA_DOCUMENTS_MAX_CLIENTS:
            raise RoomFullError
        self.members.add(member)

    async def remove(self, member: Member) -> None:
        self.members.discard(member)
        self._remove_awareness(member.awareness_ids)
        member.awareness_ids.clear()
        if self.members or self.closed:
            return
        await self.drained()
        if not self.members and not self.closed:
            _forget(self)
            await self.close()


# --- This process's rooms ----------------------------------------------------------------

_rooms: dict[uuid.UUID, Room] = {}
_opening: dict[uuid.UUID, asyncio.Future] = {}


def _forget(room: Room) -> None:
    if _rooms.get(room.document_id) is room:
        del _rooms[room.document_id]


async def room_join(document_id: uuid.UUID, member: Member) -> Room:
    """The open room of a document (opened now when needed), with ``member`` in it.

    Raises NotFoundError (document_state) and RoomFullError.
    """
    while True:
        room = _rooms.get(document_id)
        if room is not None and not room.closed:
            room.add(member)
            return room
        opening = _opening.get(document_id)
        if opening is not None:
            await asyncio.shield(opening)
            continue
        future = asyncio.get_running_loop().create_future()
        _opening[document_id] = future
        try:
            room = Room(document_id)
            await room.open()
            _rooms[document_id] = room
            room.add(member)
            return room
        finally:
            del _opening[document_id]
            future.set_result(None)


def rooms() -> list[Room]:
    return list(_rooms.values())


# --- Updates made outside a websocket (restore, import) ---------------------------------


def _publish_from_sync_code(document_id: uuid.UUID, seq: int, update: bytes) -> None:
    """``document_state.update_publish``'s delivery: to every process's room."""
    layer = get_channel_layer()
    message = {"type": "room.updates", "updates": [[seq, update]], "origin": "outside"}
    if layer is not None:
        try:
            async_to_sync(layer.group_send)(group_name(document_id), message)
        except Exception:
            logger.warning("layer publish failed", document=str(document_id), exc_info=True)


document_state.publisher_set(_publish_from_sync_code)
