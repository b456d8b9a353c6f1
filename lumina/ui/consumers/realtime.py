"""``/ws/realtime/``: subscribe to topics, receive their events as they are committed.

The wire protocol (JSON text frames; docs/realtime.md has the whole of it):

* authentication as every websocket here: the session cookie or ``Authorization:
  Bearer lum_…`` in the handshake; a client that cannot set headers (a browser app
  holding a token) sends ``{"type": "auth", "token": "lum_…"}`` as its first message,
  within ``AUTH_TIMEOUT_SECONDS``. Tokens never travel in the URL, where access logs
  would keep them, and are never logged or echoed;
* ``{"type": "subscribe" | "unsubscribe", "topics": [...]}``, answered with the topics
  accepted and those refused, each with a code and a reason;
* events as ``{"type": "event", "topic", "event", "id", "occurred_at", "data"}``.

Access is checked again whenever ``watch`` reports that tokens, users or permissions
changed anywhere, when the user's sessions end, and every ``RECHECK_SECONDS``: a revoked
token closes the socket with 4401, a withdrawn permission with 4403.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import structlog
from channels.auth import get_user
from channels.db import database_sync_to_async
from django.conf import settings
from django.utils.module_loading import import_module

from lumina.security.api import Actor, InvalidTokenError, actor_of_scope, authenticate_token
from lumina.ui.consumers import watch
from lumina.ui.consumers.sockets import WebsocketConsumer
from lumina.ui.realtime import fanout, topics

logger = structlog.get_logger(__name__)

AUTH_TIMEOUT_SECONDS = 5.0
RECHECK_SECONDS = 30.0
MAX_MESSAGE_BYTES = 4096
MAX_SUBSCRIPTIONS = 50
MESSAGES_PER_SECOND = 10.0
MESSAGE_BURST = 20

# Close codes: the 4000 range mirrors HTTP statuses; 1009 is the standard "too big".
CLOSE_UNAUTHENTICATED = 4401  # no, a bad, an expired or a revoked credential
CLOSE_FORBIDDEN = 4403  # a permission behind a subscription was withdrawn
CLOSE_AUTH_TIMEOUT = 4408  # no auth message in time
CLOSE_TOO_MANY_SUBSCRIPTIONS = 4409
CLOSE_RATE_LIMITED = 4429
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011  # access could not be checked: closed rather than trusted


class _Token:
    """A presented API token, kept to check it again; never shown by repr or str."""

    __slots__ = ("_raw",)

    def __init__(self, raw: str) -> None:
        self._raw = raw

    def reveal(self) -> str:
        return self._raw

    def __repr__(self) -> str:
        return "<token>"

    __str__ = __repr__


class _Bucket:
    """Messages per second a client may send: a token bucket."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.level, self.at = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.level = min(self.burst, self.level + (now - self.at) * self.rate)
        self.at = now
        if self.level < 1:
            return False
        self.level -= 1
        return True


def _error(code: str, message: str, fields: dict[str, list[str]] | None = None) -> dict:
    return {"type": "error", "error": {"code": code, "message": message, "fields": fields or {}}}


def _bearer_in(scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return credentials.strip()
    return None


class RealtimeConsumer(WebsocketConsumer):
    """One client connection: its actor, its subscriptions and the groups it joined."""

    async def connect(self) -> None:
        self.actor: Actor | None = None
        self.token: _Token | None = None
        self.via = ""
        self.subscriptions: set[str] = set()
        self.joined: set[str] = set()
        self.closed = False
        self.bucket = _Bucket(MESSAGES_PER_SECOND, MESSAGE_BURST)
        self.changed = asyncio.Event()
        self.tasks: list[asyncio.Task] = []
        fanout.adopt_running_loop()
        await self.accept()
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            raw = _bearer_in(self.scope)
            self.token = _Token(raw) if raw is not None else None
            await self._authenticated(actor_of_scope(self.scope), "token" if raw else "session")
        else:
            self.tasks.append(asyncio.create_task(self._auth_deadline()))

    async def disconnect(self, code: int) -> None:
        self.closed = True
        watch.unwatch(self)
        for task in self.tasks:
            task.cancel()
        for group in self.joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        if self.actor is not None:
            logger.info(
                "realtime connection closed",
                user_id=str(self.actor.user_id),
                code=code,
                topics=len(self.subscriptions),
            )

    # --- Frames from the client ----------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closed:
            return
        if not self.bucket.take():
            await self._close(
                CLOSE_RATE_LIMITED,
                "rate_limited",
                f"More than {MESSAGES_PER_SECOND:g} messages a second.",
            )
            return
        size = len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        if size > MAX_MESSAGE_BYTES:
            await self._close(
                CLOSE_TOO_BIG, "message_too_big", f"A message is at most {MAX_MESSAGE_BYTES} bytes."
            )
            return
        message, problem = self._decode(text_data)
        if problem is not None:
            await self._send(problem)
            return
        kind = message["type"]
        if self.actor is None:
            await self._authenticate_by_message(message)
        elif kind == "subscribe":
            await self._subscribe(message)
        elif kind == "unsubscribe":
            await self._unsubscribe(message)
        elif kind == "ping":
            await self._send({"type": "pong"})
        elif kind == "auth":
            await self._send(_error("already_authenticated", "This connection is authenticated."))
        else:
            await self._send(
                _error(
                    "unknown_type",
                    "Unknown message type; use subscribe, unsubscribe or ping.",
                    {"type": ["Not one of auth, subscribe, unsubscribe, ping."]},
                )
            )

    @staticmethod
    def _decode(text_data: str | None) -> tuple[dict[str, Any], dict | None]:
        """The message, or the error to answer (which never echoes the frame: it may
        hold a token)."""
        if text_data is None:
            return {}, _error("invalid_json", "Send JSON text frames, not binary ones.")
        try:
            message = json.loads(text_data)
        except ValueError:
            return {}, _error("invalid_json", "The message is not JSON.")
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            return {}, _error(
                "invalid", "A message is a JSON object with a type.", {"type": ["Required."]}
            )
        return message, None

    # --- Authentication --------------------------------------------------------------------

    async def _auth_deadline(self) -> None:
        await asyncio.sleep(AUTH_TIMEOUT_SECONDS)
        if self.actor is None:
            await self._close(
                CLOSE_AUTH_TIMEOUT,
                "auth_timeout",
                f"Authenticate within {AUTH_TIMEOUT_SECONDS:g} s: send "
                '{"type": "auth", "token": "lum_…"} or connect with credentials.',
            )

    async def _authenticate_by_message(self, message: dict) -> None:
        raw = message.get("token")
        if message.get("type") != "auth" or not isinstance(raw, str):
            await self._close(
                CLOSE_UNAUTHENTICATED,
                "not_authenticated",
                'Authenticate first: {"type": "auth", "token": "lum_…"}.',
            )
            return
        token = _Token(raw)
        actor = await self._token_actor(token)
        if actor is None:
            await self._close(CLOSE_UNAUTHENTICATED, "invalid_token", "Invalid API token.")
            return
        self.token = token
        await self._authenticated(actor, "auth_message")

    async def _token_actor(self, token: _Token) -> Actor | None:
        try:
            return await database_sync_to_async(authenticate_token)(
                token.reveal(), ip_address=self._ip()
            )
        except InvalidTokenError:
            return None

    async def _authenticated(self, actor: Actor, via: str) -> None:
        self.actor, self.via = actor, via
        for task in self.tasks:
            task.cancel()
        groups = [fanout.user_group(actor.user_id)]
        if actor.token_id is not None:
            groups.append(fanout.token_group(actor.token_id))
        await self._join(groups)
        watch.watch(self)
        self.tasks = [asyncio.create_task(self._keep_checking())]
        await self._send(
            {
                "type": "ready",
                "user_id": str(actor.user_id),
                "via": via,
                "topics": {
                    topic.name + (":<id>" if topic.keyed else ""): topic.description
                    for topic in topics.registered().values()
                },
                "limits": {
                    "subscriptions": MAX_SUBSCRIPTIONS,
                    "messages_per_second": MESSAGES_PER_SECOND,
                    "message_bytes": MAX_MESSAGE_BYTES,
                },
            }
        )

    def _ip(self) -> str | None:
        client = self.scope.get("client")
        return client[0] if client else None

    # --- Subscriptions -----------------------------------------------------------------

    def _topics_of(self, message: dict) -> list[str] | None:
        wanted = message.get("topics")
        if not isinstance(wanted, list) or not wanted:
            return None
        if not all(isinstance(t, str) for t in wanted):
            return None
        return list(dict.fromkeys(wanted))

    async def _subscribe(self, message: dict) -> None:
        wanted = self._topics_of(message)
        if wanted is None:
            await self._send(
                _error(
                    "invalid",
                    "Name the topics to subscribe to.",
                    {"topics": ["A non-empty list of topic names."]},
                )
            )
            return
        new = [t for t in wanted if t not in self.subscriptions]
        if len(self.subscriptions) + len(new) > MAX_SUBSCRIPTIONS:
            await self._close(
                CLOSE_TOO_MANY_SUBSCRIPTIONS,
                "too_many_subscriptions",
                f"At most {MAX_SUBSCRIPTIONS} subscriptions per connection.",
            )
            return
        refusals = await database_sync_to_async(self._refusals)(new)
        accepted = [t for t in new if t not in refusals]
        shared = [
            fanout.topic_group(t) for t in accepted if topics.audience(t) is topics.Audience.SHARED
        ]
        await self._join(shared)
        self.subscriptions.update(accepted)
        await self._send(
            {
                "type": "subscribed",
                "accepted": [t for t in wanted if t in self.subscriptions],
                "refused": [
                    {"topic": t[: topics.MAX_TOPIC_LENGTH], "code": r.code, "reason": r.reason}
                    for t, r in refusals.items()
                ],
                "topics": sorted(self.subscriptions),
            }
        )

    def _refusals(self, wanted: list[str]) -> dict[str, topics.Refusal]:
        assert self.actor is not None  # noqa: S101 (only authenticated connections subscribe)
        found = {}
        for subscription in wanted:
            refusal = topics.refusal(self.actor, subscription)
            if refusal is not None:
                found[subscription] = refusal
        return found

    async def _unsubscribe(self, message: dict) -> None:
        wanted = self._topics_of(message)
        if wanted is None:
            await self._send(
                _error(
                    "invalid",
                    "Name the topics to unsubscribe from.",
                    {"topics": ["A non-empty list of topic names."]},
                )
            )
            return
        removed = [t for t in wanted if t in self.subscriptions]
        self.subscriptions.difference_update(removed)
        for subscription in removed:
            group = fanout.topic_group(subscription)
            if group in self.joined:
                self.joined.discard(group)
                await self.channel_layer.group_discard(group, self.channel_name)
        await self._send(
            {"type": "unsubscribed", "removed": removed, "topics": sorted(self.subscriptions)}
        )

    async def _join(self, groups: list[str]) -> None:
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
            self.joined.add(group)

    # --- Events from the channel layer -------------------------------------------------

    async def rt_event(self, message: dict) -> None:
        # Groups carry only what this connection may see; the topic filter is what it asked.
        if not self.closed and message.get("topic") in self.subscriptions:
            await self.send(text_data=message["text"])

    async def rt_recheck(self, message: dict) -> None:
        self.changed.set()

    # --- Access kept under watch ------------------------------------------------------

    def access_changed(self) -> None:
        self.changed.set()

    async def _keep_checking(self) -> None:
        while not self.closed:
            try:
                await asyncio.wait_for(self.changed.wait(), RECHECK_SECONDS)
            except TimeoutError:
                # Periodically also renews group membership, which channels-redis expires.
                await self._join(sorted(self.joined))
            self.changed.clear()
            if self.closed:
                return
            try:
                still = await self._still_allowed()
            except Exception:
                logger.warning("realtime access check failed", exc_info=True)
                await self._close(CLOSE_INTERNAL, "unavailable", "Access cannot be checked now.")
                return
            if not still:
                return

    async def _still_allowed(self) -> bool:
        """Check the credential and every subscription again; close the socket if not."""
        actor = await self._current_actor()
        if actor is None or actor.user_id != (self.actor.user_id if self.actor else None):
            await self._close(
                CLOSE_UNAUTHENTICATED, "not_authenticated", "The credential is no longer valid."
            )
            return False
        self.actor = actor
        refusals = await database_sync_to_async(self._refusals)(sorted(self.subscriptions))
        if refusals:
            self.subscriptions.difference_update(refusals)
            await self._send(
                {
                    "type": "revoked",
                    "topics": [
                        {"topic": t, "code": r.code, "reason": r.reason}
                        for t, r in refusals.items()
                    ],
                }
            )
            await self._close(
                CLOSE_FORBIDDEN, "forbidden", "A permission behind a subscription was withdrawn."
            )
            return False
        return True

    async def _current_actor(self) -> Actor | None:
        if self.token is not None:
            return await self._token_actor(self.token)
        session = self.scope.get("session")
        key = getattr(session, "session_key", None)
        if not key:
            return None
        store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)
        user = await get_user({"session": store})
        if not user.is_authenticated:
            return None
        return actor_of_scope({**self.scope, "user": user, "auth": None})

    # --- Sending and closing ----------------------------------------------------------

    async def _send(self, content: dict) -> None:
        if not self.closed:
            await self.send(text_data=json.dumps(content, separators=(",", ":")))

    async def _close(self, code: int, error: str, message: str) -> None:
        if self.closed:
            return
        await self._send(_error(error, message))
        self.closed = True
        await self.close(code=code, reason=error)
