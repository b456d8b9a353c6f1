"""``/ws/documents/{id}/``: the y-websocket protocol over a Channels consumer.

A stock Yjs ``WebsocketProvider`` connects unchanged. Authentication is the handshake's
(session cookie or ``Authorization: Bearer``), or for clients that cannot set headers
an API token in the query string (``?token=lum_…``, y-websocket's ``params``); see
docs/documents.md, "Realtime sync", and ADR 0021 for the close codes and limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from urllib.parse import parse_qs

import structlog
from channels.consumer import get_handler_name
from django.conf import settings
from pycrdt import YMessageType, YSyncMessageType, create_sync_message, handle_sync_message

from lumina.kernel.errors import NotFoundError
from lumina.security.api import (
    Actor,
    InvalidTokenError,
    actor_of_scope,
    actor_of_user_id,
    authenticate_token,
)
from lumina.ui.consumers import watch
from lumina.ui.consumers.protocol import QUERY_AWARENESS, CloseCode, ProtocolError, parse
from lumina.ui.consumers.rooms import Room, RoomFullError, in_thread, room_join
from lumina.ui.consumers.sockets import WebsocketConsumer
from lumina.ui.services.content import check_count, decoding
from lumina.ui.services.document_state import EMPTY_UPDATE
from lumina.ui.services.sync_access import SyncAccess, sync_access

logger = structlog.get_logger(__name__)

TOKEN_PARAMETER = "token"  # noqa: S105 (a parameter name)
# Messages waiting to be written to one client before it counts as not reading.
MAX_OUTBOX = 10_000


def _bearer(scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return credentials.strip()
    return None


def _query_token(scope) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(TOKEN_PARAMETER)
    return values[-1] if values else None


class DocumentConsumer(WebsocketConsumer):
    # No per-connection channel: the room, not each connection, listens to the layer.
    channel_layer_alias = "ui.documents.none"

    async def dispatch(self, message) -> None:
        # Channels' dispatch closes stale database connections before every message (a
        # thread hop per frame); this consumer touches the database only through the
        # room's own threads.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- connect -------------------------------------------------------------------------

    async def connect(self) -> None:
        self.room: Room | None = None
        self.awareness_ids: set[int] = set()
        self.access = SyncAccess(exists=False, read=False, edit=False)
        self._outbox: asyncio.Queue[bytes | int] = asyncio.Queue()
        self._sender: asyncio.Task | None = None
        self._closing = False
        self._allowance = 0.0
        self._checked_at = time.monotonic()
        # Accept first: a code sent before accepting reaches the client as a bare HTTP 403.
        await self.accept()
        self.actor, self._raw_token = await self._authenticate()
        if self.actor.user_id is None:
            await self.close(CloseCode.UNAUTHENTICATED)
            return
        try:
            self.document_id = uuid.UUID(self.scope["url_route"]["kwargs"]["document_id"])
        except ValueError:
            await self.close(CloseCode.NOT_FOUND)
            return
        self.access = await in_thread(sync_access)(self.actor, document_id=self.document_id)
        if not self.access.read:
            # Not readable is answered as not there, as the REST API does.
            await self.close(CloseCode.NOT_FOUND)
            return
        self._allowance = self._burst
        try:
            self.room = await room_join(self.document_id, self)
        except NotFoundError:
            await self.close(CloseCode.NOT_FOUND)
            return
        except RoomFullError:
            await self.close(CloseCode.ROOM_FULL)
            return
        self._sender = asyncio.create_task(self._send_loop())
        watch.watch(self)
        # y-websocket's opening: our state vector (sync step 1), then who is present.
        self.deliver(create_sync_message(self.room.doc))
        presence = self.room.awareness_message()
        if presence is not None:
            self.deliver(presence)

    async def _authenticate(self) -> tuple[Actor, str | None]:
        """The actor and the raw token it presented, if any (kept to re-check it)."""
        raw = _bearer(self.scope)
        if raw is not None:  # already checked by security's middleware
            return actor_of_scope(self.scope), raw
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            return actor_of_scope(self.scope), None
        raw = _query_token(self.scope)
        if raw is None:
            return Actor(user_id=None), None
        client = self.scope.get("client")
        try:
            actor = await in_thread(authenticate_token)(
                raw, ip_address=client[0] if client else None
            )
        except InvalidTokenError:
            return Actor(user_id=None), None
        return actor, raw

    @property
    def _burst(self) -> float:
        return 2 * settings.LUMINA_DOCUMENTS_MAX_MESSAGES_PER_SECOND

    # --- receive -------------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self.room is None or self._closing:
            return
        if bytes_data is None:
            self.close_with(CloseCode.MALFORMED)
            return
        if not self._within_rate():
            self.close_with(CloseCode.RATE_LIMITED)
            return
        if len(bytes_data) > settings.LUMINA_DOCUMENTS_MAX_UPDATE_BYTES:
            self.close_with(CloseCode.TOO_LARGE)
            return
        try:
            message = parse(bytes_data)
        except ProtocolError as error:
            logger.info("malformed sync message", document=str(self.document_id), error=str(error))
            self.close_with(CloseCode.MALFORMED)
            return
        room = self.room
        if message.kind == YMessageType.SYNC:
            if message.sync_type == YSyncMessageType.SYNC_STEP1:
                # Nobody is shown an update before it is stored: wait for pending writes.
                await room.drained()
                if self._closing or room.closed:
                    return
                try:
                    reply = _answer_step1(bytes_data[1:], message.payload, room.doc)
                except ValueError:
                    self.close_with(CloseCode.MALFORMED)
                    return
                if reply is not None:
                    self.deliver(reply)
                return
            if message.payload == EMPTY_UPDATE:
                return
            if not self.access.edit:
                # A viewer's editor may still send; its changes go nowhere.
                logger.debug("update from a reader ignored", document=str(self.document_id))
                return
            try:
                room.accept_update(message.payload, self, self.actor.user_id)
            except ValueError:
                self.close_with(CloseCode.MALFORMED)
            return
        if message.kind == YMessageType.AWARENESS:
            try:
                room.accept_awareness(message.payload, bytes_data, self)
            except (ValueError, RuntimeError, IndexError, TypeError, KeyError):
                self.close_with(CloseCode.MALFORMED)
            return
        if message.kind == QUERY_AWARENESS:
            presence = room.awareness_message()
            if presence is not None:
                self.deliver(presence)

    def _within_rate(self) -> bool:
        """A token bucket: the configured rate, bursts of twice that."""
        now = time.monotonic()
        rate = settings.LUMINA_DOCUMENTS_MAX_MESSAGES_PER_SECOND
        self._allowance = min(self._burst, self._allowance + (now - self._checked_at) * rate)
        self._checked_at = now
        if self._allowance < 1:
            return False
        self._allowance -= 1
        return True

    # --- send ----------------------------------------------------------------------------

    def deliver(self, message: bytes) -> None:
        """Queue a message for this client (the room never waits on one client)."""
        if self._closing:
            return
        if self._outbox.qsize() >= MAX_OUTBOX:
            self.close_with(CloseCode.TOO_SLOW)
            return
        self._outbox.put_nowait(message)

    def close_with(self, code: int) -> None:
        """Close after what is already queued has been sent."""
        if self._closing:
            return
        self._closing = True
        if self._sender is None:
            asyncio.get_running_loop().create_task(self.close(code))
            return
        self._outbox.put_nowait(int(code))

    async def _send_loop(self) -> None:
        while True:
            item = await self._outbox.get()
            if isinstance(item, int):
                await self.close(item)
                return
            await self.send(bytes_data=item)

    # --- re-checks (``watch``) -----------------------------------------------------------

    def access_changed(self) -> None:
        _rechecks.add(self)

    def recheck(self) -> tuple[int | None, bool]:
        """Synchronous: (close code or None, may edit) for this connection now."""
        if self._raw_token is not None:
            try:
                actor = authenticate_token(self._raw_token, ip_address=self.actor.ip_address)
            except InvalidTokenError:
                return CloseCode.UNAUTHENTICATED, False
        else:
            fresh = actor_of_user_id(self.actor.user_id)
            if fresh.user_id is None or not fresh.is_active:
                return CloseCode.UNAUTHENTICATED, False
            actor = self.actor
        access = sync_access(actor, document_id=self.document_id)
        if not access.exists:
            return CloseCode.NOT_FOUND, False
        if not access.read:
            return CloseCode.FORBIDDEN, False
        return None, access.edit

    def recheck_apply(self, result: tuple[int | None, bool]) -> None:
        code, edit = result
        if self._closing:
            return
        if code is not None:
            logger.info("document access revoked", document=str(self.document_id), code=code)
            self.close_with(code)
            return
        if edit != self.access.edit:
            self.access = SyncAccess(exists=True, read=True, edit=edit)

    # --- disconnect ----------------------------------------------------------------------

    async def disconnect(self, code) -> None:
        self._closing = True
        watch.unwatch(self)
        _rechecks.discard(self)
        try:
            if self._sender is not None:
                self._sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._sender
        finally:
            # Whatever ended the sender, the room must not keep a member that has gone.
            if self.room is not None:
                room, self.room = self.room, None
                await room.remove(self)


# Every socket's check in one thread hop. A failed check (the database unreachable) keeps
# the socket open, read only, until the next one.
_rechecks: watch.Batch[DocumentConsumer, tuple[int | None, bool]] = watch.Batch(
    DocumentConsumer.recheck,
    DocumentConsumer.recheck_apply,
    failed=(None, False),
    in_thread=in_thread,
)


def _answer_step1(message: bytes, state_vector: bytes, doc) -> bytes | None:
    """The sync step 2 for a client's state vector; ValueError when it is malformed (its
    entries take two bytes at least; a panic in yrs counts as malformed, not as a crash)."""
    check_count(state_vector, entry_bytes=2)
    with decoding("a state vector"):
        return handle_sync_message(message, doc)
