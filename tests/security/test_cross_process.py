"""Permission changes made by another process reach a running server, without Redis.

The attack: a role removed with ``manage.py`` still worked on the server 35 s later,
because the only signal went through a per-process cache. Here a real server process
(uvicorn, no ``REDIS_URL``) keeps answering while ``manage.py`` in another process
removes a role, revokes a token or deactivates a user; the server must refuse within
the deadline. The deadline only bounds the wait: without invalidation a role stays
cached for the life of the process and a token for 30 s, so each would be missed. How
fast it happens is measured in benchmarks/, not asserted here.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lumina.security.models.users import User
from lumina.security.services.rbac import role_assignment_create
from lumina.security.services.tokens import token_create
from lumina.security.types import Actor
from tests.conftest import database_url_for_subprocess

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
SYSTEM = Actor.system("tests")
DEADLINE = 10.0  # seconds; well under the token cache's 30 s TTL
PROVIDERS = "/api/v1/providers"  # needs providers.read: the Developer role has it


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment() -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LUMINA_", "DATABASE", "REDIS", "CELERY_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONPATH=str(ROOT),
        DATABASE_URL=database_url_for_subprocess(),
        LUMINA_EVENT_TRANSPORT="inprocess",
    )
    return env


def status_of(base: str, path: str, token: str) -> int:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def wait_for_status(base: str, path: str, token: str, wanted: int) -> int:
    """Ask until the server answers ``wanted`` or the deadline passes; the last answer."""
    deadline = time.monotonic() + DEADLINE
    while True:
        status = status_of(base, path, token)
        if status == wanted or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def manage(*arguments: str) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=ROOT,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    log = (tmp_path / "server.log").open("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=_environment(), stdout=log, stderr=log,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health/live", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    started = log.read()[-3000:]
                    raise AssertionError(f"the server did not start:\n{started}") from None
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def developer():
    user = User.objects.create_user("dev.cross@example.com", None)
    role_assignment_create(actor=SYSTEM, role="Developer", user=user.email)
    issued = token_create(user_id=user.pk, actor=SYSTEM, name="cross-process")
    return user, issued


def test_a_role_removed_with_manage_py_stops_working_on_the_server(server, developer):
    user, issued = developer
    # The server has the role cached: it answers from memory from now on.
    assert wait_for_status(server, PROVIDERS, issued.secret, 200) == 200
    assert status_of(server, PROVIDERS, issued.secret) == 200

    manage("security", "role", "unassign", "Developer", "--user", user.email)

    assert wait_for_status(server, PROVIDERS, issued.secret, 403) == 403


def test_a_token_revoked_with_manage_py_is_refused_by_the_server(server, developer):
    _, issued = developer
    assert wait_for_status(server, PROVIDERS, issued.secret, 200) == 200

    manage("security", "token", "revoke", issued.token.prefix)

    assert wait_for_status(server, PROVIDERS, issued.secret, 401) == 401


def test_a_user_deactivated_elsewhere_loses_their_cached_token_on_the_server(server, developer):
    user, issued = developer
    assert wait_for_status(server, PROVIDERS, issued.secret, 200) == 200

    # Another process (a shell, the admin console of another web process) saves the user.
    manage(
        "shell",
        "-c",
        "from lumina.security.models.users import User; "
        f"u = User.objects.get(email='{user.email}'); u.is_active = False; u.save()",
    )

    assert wait_for_status(server, PROVIDERS, issued.secret, 401) == 401
