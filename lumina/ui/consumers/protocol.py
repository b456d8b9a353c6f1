"""The y-websocket wire format as the server reads it, and the close codes it sends.

One websocket binary frame is one message: a varuint message type, then for sync
messages a varuint sync type, then one length-prefixed payload (lib0 encoding). pycrdt's
decoder reads them; it is lenient about truncation, so ``parse`` checks the lengths.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pycrdt import Decoder, YMessageType, YSyncMessageType

# Not in pycrdt's enum: y-websocket's "send me every awareness state" (no payload).
QUERY_AWARENESS = 3


class CloseCode(enum.IntEnum):
    """Why the server closed a document socket (4000 + the nearest HTTP status)."""

    MALFORMED = 4400  # not a y-websocket binary message, or an undecodable update
    UNAUTHENTICATED = 4401  # no session or token, or the token is invalid or revoked
    FORBIDDEN = 4403  # no documents.read on this document (or it was revoked)
    NOT_FOUND = 4404  # no such document, or it was deleted
    TOO_SLOW = 4504  # the client did not read what it was sent (retried)
    TOO_LARGE = 4413  # a message over LUMINA_DOCUMENTS_MAX_UPDATE_BYTES
    RATE_LIMITED = 4429  # over LUMINA_DOCUMENTS_MAX_MESSAGES_PER_SECOND
    ROOM_FULL = 4503  # LUMINA_DOCUMENTS_MAX_CLIENTS clients already here (retried)
    INTERNAL = 1011  # the server could not store an update; reconnect


class ProtocolError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Message:
    kind: int  # YMessageType or QUERY_AWARENESS
    sync_type: int | None  # YSyncMessageType for sync messages
    payload: bytes


_SYNC_TYPES = frozenset(int(t) for t in YSyncMessageType)


def parse(frame: bytes) -> Message:
    """The message in one frame; ProtocolError when it is not exactly one."""
    if not frame:
        raise ProtocolError("empty frame")
    decoder = Decoder(frame)
    try:
        kind = decoder.read_var_uint()
        if kind == YMessageType.SYNC:
            sync_type = decoder.read_var_uint()
            if sync_type not in _SYNC_TYPES:
                raise ProtocolError(f"unknown sync message type {sync_type}")
            return Message(kind, sync_type, _payload(decoder))
        if kind == YMessageType.AWARENESS:
            return Message(kind, None, _payload(decoder))
        if kind == QUERY_AWARENESS and decoder.length == 0:
            return Message(kind, None, b"")
    except (IndexError, RuntimeError) as error:
        raise ProtocolError("truncated message") from error
    raise ProtocolError(f"unknown message type {kind}")


def _payload(decoder: Decoder) -> bytes:
    payload = decoder.read_message()
    if payload is None or decoder.length != 0:
        raise ProtocolError("the payload's length does not match the frame")
    return payload
