"""From committed events to subscribers: channel-layer groups and the on-commit push.

Handlers (``lumina.ui.handlers.notifications``) turn kernel events into
``Notification``s and call ``notify``, which pushes them once the delivery transaction
commits, never before: a rolled-back delivery pushes nothing. A personal notification
goes to the group of each user (or API token) it concerns, a shared one to its topic's
group; a connection joins its own user's and token's groups and the groups of the shared
topics it was allowed to subscribe to, so isolation does not depend on filtering.

The push runs on an event loop: the web server's own (adopted at start-up and by every
connection, which the in-memory layer needs, its queues belonging to one loop), or,
in a process that serves no websocket (a Celery worker), a loop on a thread of its own,
which only a Redis layer makes useful. One lock per loop keeps pushes in commit order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

import structlog
from channels.layers import get_channel_layer
from django.db import transaction

from lumina.ui.realtime import topics

logger = structlog.get_logger(__name__)

EVENT_MESSAGE = "rt.event"  # the consumer's ``rt_event`` handler
RECHECK_MESSAGE = "rt.recheck"  # the consumer's ``rt_recheck`` handler


@dataclasses.dataclass(frozen=True)
class Notification:
    """One event as subscribers of ``topic`` see it. ``data`` holds ids, names and numbers:
    nothing secret, nothing another context keeps private (texts, arguments, results)."""

    topic: str
    event: str
    event_id: uuid.UUID
    occurred_at: str
    data: dict[str, Any]
    # Personal topics: whose it is. Shared topics leave both empty.
    users: tuple[uuid.UUID, ...] = ()
    tokens: tuple[uuid.UUID, ...] = ()

    def text(self) -> str:
        return json.dumps(
            {
                "type": "event",
                "topic": self.topic,
                "event": self.event,
                "id": str(self.event_id),
                "occurred_at": self.occurred_at,
                "data": self.data,
            },
            default=str,
            separators=(",", ":"),
        )


def user_group(user_id: uuid.UUID) -> str:
    return f"rt.user.{uuid.UUID(str(user_id)).hex}"


def token_group(token_id: uuid.UUID) -> str:
    return f"rt.token.{uuid.UUID(str(token_id)).hex}"


def topic_group(subscription: str) -> str:
    return "rt.topic." + subscription.replace(":", ".")


def groups_of(notification: Notification) -> list[str]:
    """Where a notification goes: its users' and tokens' groups, or its shared topic's.
    A personal notification naming nobody goes nowhere, never to a topic group."""
    if notification.users or notification.tokens:
        return [user_group(u) for u in notification.users] + [
            token_group(t) for t in notification.tokens
        ]
    if topics.audience(notification.topic) is topics.Audience.SHARED:
        return [topic_group(notification.topic)]
    return []


def notify(notifications: Sequence[Notification]) -> None:
    """Push ``notifications`` once the current transaction commits (at once outside one)."""
    if notifications:
        batch = list(notifications)
        transaction.on_commit(lambda: _sender.submit(_messages(batch)))


def recheck(*, users: Iterable[uuid.UUID] = (), tokens: Iterable[uuid.UUID] = ()) -> None:
    """Ask these users' (tokens') connections to check their access again, on commit."""
    groups = [user_group(u) for u in users] + [token_group(t) for t in tokens]
    if groups:
        messages = [(group, {"type": RECHECK_MESSAGE}) for group in groups]
        transaction.on_commit(lambda: _sender.submit(messages))


def _messages(notifications: list[Notification]) -> list[tuple[str, dict]]:
    messages = []
    for notification in notifications:
        message = {"type": EVENT_MESSAGE, "topic": notification.topic, "text": notification.text()}
        messages += [(group, message) for group in groups_of(notification)]
    return messages


class _Sender:
    """Runs ``group_send``s on the adopted server loop, or on a loop of its own."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._own: asyncio.AbstractEventLoop | None = None
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._mutex = threading.Lock()

    def adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def submit(self, messages: list[tuple[str, dict]]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            loop = self._own_loop()
        future = asyncio.run_coroutine_threadsafe(self._send(messages), loop)
        future.add_done_callback(_log_failure)

    async def _send(self, messages: list[tuple[str, dict]]) -> None:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        layer = get_channel_layer()
        if layer is None:
            return
        async with lock:
            present = await _groups_with_members(layer, {group for group, _ in messages})
            for group, message in messages:
                if present is None or group in present:
                    await layer.group_send(group, message)

    def _own_loop(self) -> asyncio.AbstractEventLoop:
        with self._mutex:
            if self._own is None or self._own.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="lumina-realtime-push", daemon=True
                )
                thread.start()
                self._own = loop
            return self._own


async def _groups_with_members(layer: Any, groups: set[str]) -> set[str] | None:
    """Which of ``groups`` have a member now, in one round trip per Redis host; None when
    the layer is not channels-redis's (the in-memory layer's group_send costs nothing).

    channels-redis's ``group_send`` costs two round trips even to an empty group, and
    most events concern nobody connected (a usage record with no console open): asking
    first, for the whole batch at once, keeps the common case to one pipeline. The
    question is the one ``group_send`` asks (members that joined within
    ``group_expiry``), asked just before it, so nobody who joined is skipped.
    """
    redis_layers = sys.modules.get("channels_redis.core")  # loaded if the layer is one
    if redis_layers is None or not isinstance(layer, redis_layers.RedisChannelLayer):
        return None
    oldest = int(time.time()) - layer.group_expiry  # group_send drops members up to this
    by_host: dict[int, list[str]] = {}
    for group in groups:
        by_host.setdefault(layer.consistent_hash(group), []).append(group)
    present = set()
    for index, names in by_host.items():
        pipe = layer.connection(index).pipeline(transaction=False)
        for group in names:
            pipe.zcount(layer._group_key(group), f"({oldest}", "+inf")
        counts = await pipe.execute()
        present.update(group for group, count in zip(names, counts, strict=True) if count)
    return present


def _log_failure(future) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if error is not None:
        logger.warning("realtime push failed", error=type(error).__name__)


_sender = _Sender()


def adopt_running_loop() -> None:
    """Push from the calling (server) event loop from now on."""
    _sender.adopt(asyncio.get_running_loop())


async def adopt_server_loop() -> None:
    """The web process's start-up hook (``lumina.kernel.lifecycle``)."""
    adopt_running_loop()
