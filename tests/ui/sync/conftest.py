"""Real servers (``manage.py serve`` processes on the test database) and stock Yjs clients
(npm ``yjs`` + ``y-websocket`` over ``ws``, driven through tests/ui/yjs_client/driver.mjs).

Tests here need ``transaction=True``: the servers see only committed rows.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.conftest import database_url_for_subprocess

ROOT = Path(__file__).resolve().parents[3]
YJS_CLIENT = ROOT / "tests" / "ui" / "yjs_client"
# A Redis database of their own, so concurrent runs of other suites do not collide.
REDIS_URL = "redis://127.0.0.1:6379/11"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One ``manage.py serve`` process; ``kill`` is SIGKILL, ``start`` (re)starts it."""

    def __init__(self, env: dict[str, str], port: int | None = None) -> None:
        self.port = port or free_port()
        self.env = env
        self.process: subprocess.Popen | None = None
        self.log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 (kept for the test)
            "w+", prefix="lumina-sync-", suffix=".log", delete=False
        )

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/documents"

    def start(self) -> Server:
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--no-migrate", "--port", str(self.port)],
            cwd=ROOT,
            env={**self.env, "LUMINA_PORT": str(self.port)},
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.http}/health/live", timeout=2):
                    return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        raise AssertionError(f"the server never answered:\n{self.log()}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        self.log_file.flush()
        return Path(self.log_file.name).read_text(errors="replace")

    def close(self) -> None:
        self.kill()
        self.log_file.close()
        os.unlink(self.log_file.name)


def server_env(**overrides: str) -> dict[str, str]:
    from django.conf import settings

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LUMINA_", "DATABASE", "REDIS", "CELERY"))
    }
    env.update(
        DATABASE_URL=database_url_for_subprocess(),
        LUMINA_LOG_FORMAT="json",
        LUMINA_LOG_LEVEL="INFO",
        LUMINA_DATA_DIR=tempfile.gettempdir(),
        # Sessions made here (Django's test client) must be readable there.
        SECRET_KEY=settings.SECRET_KEY,
        **overrides,
    )
    return env


@pytest.fixture
def servers(transactional_db):
    """Start servers with ``servers(**env overrides)``; all are killed at the end."""
    started: list[Server] = []

    def start(**overrides: str) -> Server:
        server = Server(server_env(**overrides)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture
def server(servers) -> Server:
    return servers()


class Yjs:
    """The Node driver: ``call(op, **arguments)`` answers the driver's JSON reply."""

    def __init__(self) -> None:
        if not (YJS_CLIENT / "node_modules" / "y-websocket").is_dir():
            pytest.fail("npm packages missing: run `make pytest` (it runs npm ci)")
        self.process = subprocess.Popen(
            ["node", str(YJS_CLIENT / "driver.mjs")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.ids = itertools.count()

    def call(self, op: str, **arguments) -> dict:
        command_id = next(self.ids)
        self.process.stdin.write(json.dumps({"id": command_id, "op": op, **arguments}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError("the Yjs driver exited")
        answer = json.loads(line)
        assert answer["id"] == command_id
        if not answer.pop("ok"):
            raise AssertionError(f"{op}: {answer['error']}")
        return answer

    def connect(self, name: str, server: Server, document_id, *, token=None, **extra) -> None:
        self.call(
            "connect",
            name=name,
            server=server.ws,
            document=str(document_id),
            params={"token": token} if token else {},
            origin=server.http,
            **extra,
        )

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture
def yjs():
    driver = Yjs()
    yield driver
    driver.close()


def make_user(email_prefix: str = "user"):
    from lumina.security.models.users import User

    return User.objects.create_user(f"{email_prefix}-{uuid.uuid4().hex[:8]}@example.com", None)


def make_token(user, scopes=("*",)) -> str:
    from lumina.security.services.tokens import token_create
    from lumina.security.types import Actor

    return token_create(user_id=user.pk, actor=Actor.system("cli"), scopes=list(scopes)).secret


def make_document(owner, title: str = "Notes"):
    from lumina.ui.models import Document

    return Document.objects.create(title=title, owner_id=owner.pk)


def share(document, owner, person, permission: str | None) -> None:
    from lumina.security.api import Actor
    from lumina.ui.services.documents import document_share

    document_share(
        actor=Actor.for_user(owner, mfa_verified=False),
        document_id=document.id,
        principal=person.email,
        permission=permission,
    )


def stored_updates(document) -> list[bytes]:
    from lumina.ui.models import DocumentUpdate

    return [
        bytes(data)
        for data in DocumentUpdate.objects.filter(document=document)
        .order_by("seq")
        .values_list("data", flat=True)
    ]


def stored_text(document, root: str = "t") -> str:
    from pycrdt import Doc, Text

    from lumina.ui.services.document_state import state_load

    doc = Doc()
    doc.apply_update(state_load(document.id))
    return str(doc.get(root, type=Text))


def require_redis() -> None:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=2).close()
    except OSError:
        pytest.fail("Redis is not reachable on 127.0.0.1:6379; these tests need it")
