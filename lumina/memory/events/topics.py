"""Events about topics and the entity graph. They carry ids, scopes and counts, never text."""

from __future__ import annotations

import dataclasses
import uuid

from lumina.kernel.events import IntegrationEvent

__all__ = ["TopicsExtracted"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TopicsExtracted(IntegrationEvent):
    """The topics of one scope were (re)computed: the old ones were replaced.

    ``scope`` is user, agent, session or collection; ``scope_key`` the agent id, the
    session id or the collection's id ("" for a user's whole memory).
    """

    name = "memory.TopicsExtracted"
    version = 1

    owner_id: uuid.UUID
    scope: str
    scope_key: str
    topic_ids: tuple[uuid.UUID, ...]
    record_count: int
    actor_id: uuid.UUID | None = None
