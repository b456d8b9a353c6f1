"""Whose memory a call may touch: one's own with ``memory.read``/``memory.write``, anyone's
with ``memory.manage`` too.

Another user's scope is refused with 403 before anything about it is read, so neither
counts nor errors tell whether it holds anything. A record asked for by id that the
caller may not see is a plain 404, like one that does not exist.
"""

from __future__ import annotations

import uuid

from lumina.memory.errors import InvalidInputError
from lumina.security.api import Actor, authorize, require

READ = "memory.read"
WRITE = "memory.write"
MANAGE = "memory.manage"


def owner_resolve(actor: Actor, *, action: str, user_id: uuid.UUID | None = None) -> uuid.UUID:
    """The owner a call acts on: the caller, or ``user_id`` if the caller may manage others."""
    require(actor, action)
    if user_id is None or user_id == actor.user_id:
        if actor.user_id is None:
            raise InvalidInputError("user_id", "Name the user whose memory this is.")
        return actor.user_id
    require(actor, MANAGE)
    return user_id


def may_see(actor: Actor, owner_id: uuid.UUID, *, action: str = READ) -> bool:
    """Whether a record of ``owner_id`` exists for this caller (an answer, never an audit)."""
    if not authorize(actor, action):
        return False
    return owner_id == actor.user_id or bool(authorize(actor, MANAGE))
