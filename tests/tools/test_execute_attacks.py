"""The issue's attacks, through the whole execution path (``POST /tools/execute``): each is
contained with a clear status, recorded as an execution with its failure, and leaks nothing
into the response. The sandbox's own layers are tested in test_sandbox_attacks.py."""

from __future__ import annotations

import pathlib

import pytest

from lumina.kernel.models import OutboxEvent
from lumina.tools.models import Execution
from tests.tools.conftest import client_for
from tests.tools.factories import python_tool

pytestmark = pytest.mark.django_db

ANY = {"type": "object"}
ROOT = pathlib.Path(__file__).resolve().parents[2]
ENV_FILE = str(ROOT / ".env")
KEYS = str(ROOT / "var" / "master_keys")

ATTACKS = {
    "shadow": ("def main():\n    return open('/etc/shadow').read()\n", "failed", "exception"),
    "env_file": (
        f"def main():\n    return open({ENV_FILE!r}).read()\n",
        "failed",
        "exception",
    ),
    "master_keys": (
        f"def main():\n    return open({KEYS!r}).read()\n",
        "failed",
        "exception",
    ),
    "write_outside_tmp": (
        "def main():\n    open('/usr/lumina-was-here', 'w').write('x')\n",
        "failed",
        "exception",
    ),
    "socket": (
        "import socket\ndef main():\n    socket.create_connection(('127.0.0.1', 6379), 1)\n",
        "failed",
        "exception",
    ),
    "allocate_4_gib": ("def main():\n    return len(bytearray(4 << 30))\n", "limit_exceeded", None),
    "infinite_loop": ("def main():\n    while True:\n        pass\n", "timeout", None),
    "sleep_past_timeout": ("import time\ndef main():\n    time.sleep(60)\n", "timeout", None),
    "print_100_mb": (
        "import sys\ndef main():\n    chunk = 'x' * (1 << 20)\n    for _ in range(100):\n"
        "        sys.stdout.write(chunk)\n",
        "limit_exceeded",
        None,
    ),
    "fork_bomb": (
        "import os\ndef main():\n    while True:\n        try:\n            os.fork()\n"
        "        except OSError:\n            pass\n",
        "timeout",
        None,
    ),
}


def _secrets() -> list[str]:
    """What the attacks are after, read here on the host, so that not finding it in an
    answer means something: the master keys file, the shadow file's root entry."""
    found = [pathlib.Path(KEYS).read_text().strip()[:40]]
    shadow = pathlib.Path("/etc/shadow")
    if shadow.exists():
        found.append(shadow.read_text().splitlines()[0])
    assert all(len(secret) > 10 for secret in found)
    return found


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_an_attack_is_contained_recorded_and_leaks_nothing(developer, attack):
    source, status, error_code = ATTACKS[attack]
    python_tool(attack, source=source, input_schema=ANY, output_schema=None, timeout_seconds=2)
    response = client_for(developer).post(
        "/api/v1/tools/execute", {"tool": attack, "arguments": {}}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == status, body
    if error_code:
        assert body["error_code"] == error_code
    assert body["result"] is None
    row = Execution.objects.get(id=body["id"])
    assert (row.status, row.tool_name) == (status, attack)
    assert OutboxEvent.objects.filter(name="tools.ToolFailed").count() == 1
    # Nothing of the host's secrets in what came back.
    text = response.content.decode()
    for secret in _secrets():
        assert secret not in text
    assert len(row.stdout) <= 1_000_000
    assert not pathlib.Path("/usr/lumina-was-here").exists()


def test_the_server_answers_after_the_attacks(developer):
    python_tool("adder")
    response = client_for(developer).post(
        "/api/v1/tools/execute", {"tool": "adder", "arguments": {"a": 1, "b": 1}}, format="json"
    )
    assert response.json()["result"] == {"sum": 2}
