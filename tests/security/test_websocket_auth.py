"""Websockets authenticate with the same API tokens (and sessions) as HTTP."""

import json

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from lumina.security.consumers import UNAUTHORISED_CLOSE_CODE, websocket_auth
from lumina.security.services.tokens import token_create
from lumina.security.types import Actor

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


class WhoAmI(AsyncJsonWebsocketConsumer):
    async def connect(self):
        await self.accept()
        user = self.scope["user"]
        auth = self.scope.get("auth")
        await self.send_json(
            {
                "email": user.email if user.is_authenticated else None,
                "scopes": list(auth.scopes) if auth is not None else None,
            }
        )


APP = websocket_auth(WhoAmI.as_asgi())


class Client(ApplicationCommunicator):
    """A websocket client speaking raw ASGI (channels.testing needs daphne)."""

    async def connect(self) -> tuple[bool, int | None]:
        await self.send_input({"type": "websocket.connect"})
        answer = await self.receive_output(5)
        return answer["type"] == "websocket.accept", answer.get("code")

    async def receive_json_from(self) -> dict:
        message = await self.receive_output(5)
        assert message["type"] == "websocket.send"
        return json.loads(message["text"])

    async def disconnect(self) -> None:
        await self.send_input({"type": "websocket.disconnect", "code": 1000})
        await self.wait(5)


async def _connect(headers=()):
    scope = {"type": "websocket", "path": "/ws/whoami", "headers": list(headers),
             "query_string": b"", "subprotocols": []}  # fmt: skip
    communicator = Client(APP, scope)
    connected, code = await communicator.connect()
    return communicator, connected, code


@pytest.fixture
def token(django_user_model):
    user = django_user_model.objects.create_user("ws@example.com", "pw-long-enough-1")
    return token_create(user_id=user.pk, actor=Actor.system("tests"), scopes=["documents.*"])


async def test_a_bearer_token_authenticates_the_handshake(token):
    communicator, connected, _ = await _connect(
        [(b"authorization", f"Bearer {token.secret}".encode())]
    )
    assert connected
    assert await communicator.receive_json_from() == {
        "email": "ws@example.com",
        "scopes": ["documents.*"],
    }
    await communicator.disconnect()


@pytest.mark.parametrize("presented", ["lum_" + "x" * 43, "not-a-token", ""])
async def test_a_bad_token_refuses_the_handshake(presented):
    _, connected, code = await _connect([(b"authorization", f"Bearer {presented}".encode())])
    assert not connected
    assert code == UNAUTHORISED_CLOSE_CODE


async def test_no_credentials_connect_as_anonymous():
    communicator, connected, _ = await _connect()
    assert connected
    assert await communicator.receive_json_from() == {"email": None, "scopes": None}
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [(None, True), (b"http://127.0.0.1:8000", True), (b"http://evil.example", False)],
    ids=["a program (no origin)", "a page of this site", "a page of another site"],
)
async def test_the_origin_check_refuses_other_sites_pages_not_programs(origin, accepted):
    from lumina.security.consumers import browser_origin_validator

    headers = [(b"origin", origin)] if origin else []
    scope = {"type": "websocket", "path": "/ws/whoami", "headers": headers,
             "query_string": b"", "subprotocols": []}  # fmt: skip
    communicator = Client(browser_origin_validator(APP), scope)
    connected, _ = await communicator.connect()
    assert connected is accepted
    if connected:
        await communicator.receive_json_from()
        await communicator.disconnect()
