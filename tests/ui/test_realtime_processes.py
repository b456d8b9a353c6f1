"""Two real server processes (``manage.py serve``) on one Redis and one database: an event
committed in process A reaches a subscriber connected to process B, through the
channels-redis layer, and a second user's subscribers receive nothing of the first's.

Real websocket clients (the ``websockets`` package) connect over TCP; one authenticates
with the handshake's Bearer header, one with the first ``auth`` message, and the servers'
logs are searched for the tokens afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from lumina.security.models.rbac import Role, RoleAssignment
from lumina.security.models.users import User
from lumina.security.services.tokens import token_create
from lumina.security.types import Actor
from lumina.tools.services.registry import builtins_register
from tests.conftest import database_url_for_subprocess, reachable

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
SYSTEM = Actor.system("tests")
REDIS_URL = "redis://127.0.0.1:6379/9"  # this module's own Redis database
WAIT = 20  # seconds: bounds each wait; nothing here asserts how fast


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment(data_dir: Path, port: int, name: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LUMINA_", "DATABASE", "REDIS", "CELERY_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONPATH=str(ROOT),
        DATABASE_URL=database_url_for_subprocess(),
        REDIS_URL=REDIS_URL,
        LUMINA_EVENT_TRANSPORT="inprocess",
        LUMINA_DATA_DIR=str(data_dir),
        LUMINA_PORT=str(port),
        LUMINA_LOG_FORMAT="json",
        # Started side by side: each ensures an admin of its own, so they never race.
        LUMINA_ADMIN_EMAIL=f"admin-{name}@rt.example",
    )
    return env


@pytest.fixture
def servers():
    if not reachable("127.0.0.1", 6379):
        pytest.fail("Redis is not reachable on 127.0.0.1:6379: this test needs it")
    redis.Redis.from_url(REDIS_URL).flushdb()
    processes, logs = [], []
    with tempfile.TemporaryDirectory(prefix="lumina-realtime-") as directory:
        try:
            bases = []
            for name in ("a", "b"):
                port = _free_port()
                log = (Path(directory) / f"{name}.log").open("w+")
                logs.append(log)
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "manage.py", "serve", "--no-migrate"],
                        cwd=ROOT,
                        env=_environment(Path(directory) / name, port, name),
                        stdout=log,
                        stderr=log,
                    )
                )
                bases.append(f"127.0.0.1:{port}")
            for process, base, log in zip(processes, bases, logs, strict=True):
                _wait_until_live(process, base, log)
            yield bases, logs
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
            for log in logs:
                log.close()


def _wait_until_live(process, base: str, log) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"http://{base}/health/live", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise AssertionError(f"the server did not start:\n{log.read()[-3000:]}") from None
            time.sleep(0.2)


def _developer(email: str) -> tuple[User, str]:
    user = User.objects.create_user(email, None)
    RoleAssignment.objects.create(role=Role.objects.get(name="Developer"), user=user)
    return user, token_create(user_id=user.pk, actor=SYSTEM, scopes=["*"]).secret


def _execute(base: str, secret: str) -> None:
    request = urllib.request.Request(
        f"http://{base}/api/v1/tools/execute",
        data=json.dumps({"tool": "time_now", "arguments": {}}).encode(),
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        assert response.status == 200


def _open(stack: contextlib.ExitStack, base: str, *, secret: str, by_message: bool = False):
    # A browser app sends its page's origin and the token in a message; a program sends
    # the Authorization header and no origin at all.
    socket_ = stack.enter_context(
        connect(
            f"ws://{base}/ws/realtime/",
            origin=f"http://{base}" if by_message else None,
            additional_headers={} if by_message else {"Authorization": f"Bearer {secret}"},
            open_timeout=WAIT,
        )
    )
    if by_message:
        socket_.send(json.dumps({"type": "auth", "token": secret}))
    ready = json.loads(socket_.recv(timeout=WAIT))
    assert ready["type"] == "ready", ready
    socket_.send(json.dumps({"type": "subscribe", "topics": ["tools"]}))
    assert json.loads(socket_.recv(timeout=WAIT))["accepted"] == ["tools"]
    return socket_


def test_an_event_committed_in_one_process_reaches_its_user_on_another_and_nobody_else(servers):
    (a, b), logs = servers
    builtins_register(actor=SYSTEM)
    _, alice_secret = _developer("alice@rt.example")
    _, bob_secret = _developer("bob@rt.example")

    stack = contextlib.ExitStack()
    alice_on_b = _open(stack, b, secret=alice_secret, by_message=True)
    bob_on_b = _open(stack, b, secret=bob_secret)
    bob_on_a = _open(stack, a, secret=bob_secret)

    _execute(a, alice_secret)  # committed, and its event delivered, in process A

    event = json.loads(alice_on_b.recv(timeout=WAIT))
    assert (event["topic"], event["event"]) == ("tools", "tools.ToolExecuted")
    assert event["data"]["tool_name"] == "time_now"

    _execute(b, bob_secret)  # and the other way round: B's event reaches A

    for socket_ in (bob_on_a, bob_on_b):
        first = json.loads(socket_.recv(timeout=WAIT))  # bob's own run, none of alice's first
        assert first["data"]["execution_id"] != event["data"]["execution_id"]
        assert first["topic"] == "tools"
    for socket_ in (alice_on_b, bob_on_b, bob_on_a):
        with pytest.raises(TimeoutError):
            socket_.recv(timeout=0.5)  # nothing more: alice got none of bob's, bob none of hers
    stack.close()

    for log in logs:
        log.seek(0)
        text = log.read()
        assert "Lumina is starting" in text  # the log is there to be searched
        for secret in (alice_secret, bob_secret):
            assert secret not in text
            assert secret[4:] not in text


def test_a_page_of_another_site_is_refused_at_the_handshake(servers):
    (a, _), _ = servers
    _, secret = _developer("carol@rt.example")
    with (
        pytest.raises(InvalidStatus) as refused,
        connect(
            f"ws://{a}/ws/realtime/",
            origin="http://evil.example",
            additional_headers={"Authorization": f"Bearer {secret}"},
            open_timeout=WAIT,
        ),
    ):
        pass
    assert refused.value.response.status_code == 403
    with contextlib.ExitStack() as stack:
        _open(stack, a, secret=secret)  # the same token, without a foreign origin, gets in
