"""A websocket client over raw ASGI for /ws/realtime/, and the events tests publish."""

from __future__ import annotations

import json
import uuid

from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from channels.routing import URLRouter
from django.db import transaction

from config.routing import websocket_urlpatterns
from lumina.kernel.bus import publish_many
from lumina.security.consumers import websocket_auth
from lumina.security.models.rbac import Role, RoleAssignment
from lumina.security.models.users import User
from lumina.security.services.tokens import token_create
from lumina.security.types import Actor
from lumina.tools.events import ToolExecuted

APP = websocket_auth(URLRouter(websocket_urlpatterns))
SYSTEM = Actor.system("tests")
WAIT = 5  # seconds: how long a test waits for an answer before it fails


class Client(ApplicationCommunicator):
    """One connection, speaking raw ASGI (channels.testing needs daphne)."""

    closed_with: int | None = None

    async def connect(self) -> bool:
        await self.send_input({"type": "websocket.connect"})
        answer = await self.receive_output(WAIT)
        if answer["type"] == "websocket.close":
            self.closed_with = answer.get("code")
        return answer["type"] == "websocket.accept"

    async def send_json(self, content) -> None:
        await self.send_input({"type": "websocket.receive", "text": json.dumps(content)})

    async def send_text(self, text: str) -> None:
        await self.send_input({"type": "websocket.receive", "text": text})

    async def receive(self, timeout: float = WAIT) -> dict:
        """The next message; ``{"closed": code}`` when the server closed the socket."""
        message = await self.receive_output(timeout)
        if message["type"] == "websocket.close":
            self.closed_with = message.get("code")
            return {"closed": message.get("code")}
        return json.loads(message["text"])

    async def receive_type(self, kind: str) -> dict:
        message = await self.receive()
        assert message.get("type") == kind, message
        return message

    async def closed(self) -> int:
        """Read until the server closes; the close code."""
        while True:
            message = await self.receive()
            if "closed" in message:
                return message["closed"]

    async def disconnect(self) -> None:
        await self.send_input({"type": "websocket.disconnect", "code": 1000})
        await self.wait(WAIT)


def scope(headers=()) -> dict:
    return {
        "type": "websocket",
        "path": "/ws/realtime/",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "query_string": b"",
        "subprotocols": [],
        "client": ("127.0.0.1", 50000),
    }


async def connect_with_token(secret: str) -> Client:
    client = Client(APP, scope([(b"authorization", f"Bearer {secret}".encode())]))
    assert await client.connect(), client.closed_with
    await client.receive_type("ready")
    return client


async def connect_anonymous() -> Client:
    client = Client(APP, scope())
    assert await client.connect()
    return client


async def subscribe(client: Client, *topics: str) -> dict:
    await client.send_json({"type": "subscribe", "topics": list(topics)})
    return await client.receive_type("subscribed")


def make_user(*, role: str | None = None, staff: bool = False) -> User:
    user = User.objects.create_user(f"{uuid.uuid4().hex[:10]}@rt.example", None, is_staff=staff)
    if role is not None:
        RoleAssignment.objects.create(role=Role.objects.get(name=role), user=user)
    return user


def token_for(user: User, scopes=("*",)) -> str:
    return token_create(user_id=user.pk, actor=SYSTEM, scopes=list(scopes)).secret


async def developer_with_token() -> tuple[User, str]:
    """A Developer and an API token of theirs, made outside the event loop."""

    def made() -> tuple[User, str]:
        user = make_user(role="Developer")
        return user, token_for(user)

    return await sync_to_async(made)()


def tool_run(user_id: uuid.UUID, name: str = "time_now") -> ToolExecuted:
    return ToolExecuted(
        execution_id=uuid.uuid4(),
        tool_id=uuid.uuid4(),
        tool_name=name,
        tool_version=1,
        duration_ms=1.0,
        actor_id=user_id,
    )


def _publish_committed(events) -> None:
    with transaction.atomic():
        publish_many(events)


async def publish(*events) -> None:
    """Publish ``events`` in one committed transaction (delivered in process, on commit)."""
    await sync_to_async(_publish_committed, thread_sensitive=False)(list(events))


def usage_of(user_id: uuid.UUID, token_id: uuid.UUID | None = None):
    from lumina.providers.events import UsageRecorded

    return UsageRecorded(
        request_id=uuid.uuid4().hex,
        operation="chat",
        status="ok",
        stream=False,
        requested_model="lumina-dev-chat",
        model="lumina-dev-chat",
        input_tokens=3,
        output_tokens=5,
        user_id=user_id,
        token_id=token_id,
    )


def budget_refusal(scope: str, subject_id: uuid.UUID):
    import datetime as dt
    from decimal import Decimal

    from lumina.providers.events import BudgetExceeded

    return BudgetExceeded(
        budget_id=uuid.uuid4(),
        scope=scope,
        subject_id=subject_id,
        period="day",
        period_start=dt.date(2026, 1, 1),
        limit_usd=Decimal("1.00"),
        spent_usd=Decimal("1.20"),
    )


def memory_stored(owner_id: uuid.UUID):
    from lumina.memory.events import MemoryStored

    return MemoryStored(owner_id=owner_id, layer="working", record_ids=(uuid.uuid4(),))


def circuit_opened():
    from lumina.providers.events import CircuitOpened

    return CircuitOpened(
        deployment_id=uuid.uuid4(), provider_name="upstream", model="m", reason="5 failures"
    )
