"""The python-tool sandbox's contract: how runs end, the pool, the weaker mode, readiness."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lumina.security.services.tokens import token_create
from lumina.security.types import Actor
from lumina.tools.sandbox import run_python, runner, sandbox_status
from lumina.tools.sandbox.launcher import SandboxConfig, kill
from lumina.tools.types import ExecutionStatus, Limits
from tests.security.rbac_support import give_role, make_user

PROJECT = Path(__file__).resolve().parents[2]
LIMITS = Limits(timeout_seconds=5, memory_mb=128, output_bytes=64 * 1024)


def run(source: str, arguments=None, limits: Limits = LIMITS):
    return run_python(source, {} if arguments is None else arguments, limits)


def test_main_gets_the_arguments_as_keywords_and_returns_json():
    source = (
        "def main(a, b, *, scale=1):\n    print('adding')\n    return {'sum': (a + b) * scale}\n"
    )
    result = run(source, {"a": 2, "b": 3, "scale": 10})
    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.succeeded
    assert result.result == {"sum": 50}
    assert result.stdout == "adding\n"
    assert result.error_code == ""
    assert result.resource_use["max_rss_kb"] > 0
    assert result.duration_ms > 0


def test_results_come_back_as_json_would_carry_them():
    value = {
        "text": 'é ☃ 😀 \n " \\ \u0000',
        "numbers": [0, -1, 2**70, 1.5, -0.0, 1e300, 3.141592653589793],
        "flags": [True, False, None],
        "nested": {"a": {"b": [[], {}]}},
    }
    source = f"def main():\n    return {value!r}\n"
    assert run(source).result == json.loads(json.dumps(value))
    assert run("def main():\n    return (1, 2)\n").result == [1, 2]
    assert run("def main():\n    return {1: 'one'}\n").result == {"1": "one"}


@pytest.mark.parametrize(
    "expression",
    ["b'bytes'", "{(1, 2): 3}", "[float('inf')]", "object()", "__import__('math').nan"],
)
def test_a_result_json_cannot_carry_is_refused(expression):
    result = run(f"def main():\n    return {expression}\n")
    assert result.status == ExecutionStatus.FAILED
    assert result.error_code == "result"


def test_a_self_containing_result_is_refused_not_a_crash():
    result = run("def main():\n    loop = []\n    loop.append(loop)\n    return loop\n")
    assert result.status == ExecutionStatus.FAILED
    assert result.error_code == "result"


def test_arguments_that_are_not_an_object_are_the_one_argument():
    result = run("def main(values):\n    return sorted(values)\n", [3, 1, 2])
    assert result.result == [1, 2, 3]


def test_the_standard_library_is_there_and_nothing_else():
    source = (
        "import json, re, datetime, math\n"
        "def main():\n"
        "    try:\n"
        "        import django\n"
        "    except ImportError:\n"
        "        return 'no django'\n"
        "    return 'django'\n"
    )
    assert run(source).result == "no django"


@pytest.mark.parametrize(
    ("source", "code", "message"),
    [
        ("def run():\n    return 1\n", "entrypoint", "defines no function 'main'"),
        ("def main(:\n", "exception", "SyntaxError"),
        ("def main():\n    raise ValueError('bad input')\n", "exception", "ValueError: bad input"),
        ("def main():\n    return {1, 2}\n", "result", "not JSON"),
        ("def main():\n    return float('nan')\n", "result", "not JSON"),
        ("import sys\ndef main():\n    sys.exit(4)\n", "exit", "exited (4)"),
        ("import os\ndef main():\n    os._exit(3)\n", "exit", "status 3"),
        ("def main(x):\n    return x\n", "exception", "TypeError"),
    ],
)
def test_each_failure_has_its_code_and_a_message(source, code, message):
    result = run(source)
    assert result.status == ExecutionStatus.FAILED
    assert result.error_code == code
    assert message in result.error
    assert result.result is None


def test_a_tool_s_traceback_shows_its_own_frames_only():
    result = run("def helper():\n    raise KeyError('k')\n\ndef main():\n    helper()\n")
    assert result.error_code == "exception"
    assert 'File "<tool>", line 5, in main' in result.stderr
    assert 'File "<tool>", line 2, in helper' in result.stderr
    assert "_run" not in result.stderr  # the harness's frame is left out


def test_a_tool_killed_by_a_signal_is_reported_as_crashed():
    result = run("import os, signal\ndef main():\n    os.kill(os.getpid(), signal.SIGSEGV)\n")
    assert result.status == ExecutionStatus.FAILED
    assert result.error_code == "crashed"
    assert str(int(signal.SIGSEGV)) in result.error


def test_stderr_is_kept_apart_from_stdout():
    source = "import sys\ndef main():\n    print('out')\n    print('err', file=sys.stderr)\n"
    result = run(source)
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"


def test_output_under_the_cap_is_kept_whole():
    result = run("def main():\n    print('z' * 60000)\n    return 1\n")
    assert result.status == ExecutionStatus.SUCCEEDED
    assert len(result.stdout) == 60001
    assert not result.stdout_truncated


def test_concurrent_runs_each_get_their_own_answer():
    source = "import time\ndef main(n):\n    time.sleep(0.05)\n    return n * n\n"
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: run(source, {"n": n}), range(24)))
    assert [r.result for r in results] == [n * n for n in range(24)]


def test_the_pool_is_refilled_after_runs(settings):
    settings.LUMINA_SANDBOX_POOL_SIZE = 2
    for _ in range(3):
        assert run("def main():\n    return 1\n").result == 1
    status = {}
    for _ in range(500):  # the refill thread starts replacements in the background
        status = sandbox_status()
        if status.get("idle") == 2:
            break
        time.sleep(0.01)
    assert status["idle"] == 2


def test_only_a_run_that_finds_the_pool_empty_is_a_cold_start(settings):
    settings.LUMINA_SANDBOX_POOL_SIZE = 1
    runner.close_pools()  # one another test filled would start warm
    assert run("def main():\n    return 1\n").result == 1  # the pool starts empty
    for _ in range(500):
        if sandbox_status().get("idle") == 1:
            break
        time.sleep(0.01)
    assert sandbox_status()["cold_starts"] == 1
    assert run("def main():\n    return 2\n").result == 2  # a warm one
    assert sandbox_status()["cold_starts"] == 1


def test_a_warm_sandbox_that_died_while_idle_is_replaced(settings):
    settings.LUMINA_SANDBOX_POOL_SIZE = 1
    assert run("def main():\n    return 1\n").result == 1
    pool = runner._pool(runner._config())
    warm = pool.acquire()
    kill(warm.process)
    warm.process.wait()
    assert _nobody_reads(warm.process.stdin)
    # As if the pool had handed out the dead one: the run still succeeds.
    original = pool.acquire
    pool.acquire = lambda: warm
    try:
        assert run("def main():\n    return 2\n").result == 2
    finally:
        pool.acquire = original


def _nobody_reads(stdin) -> bool:
    gone = select.poll()  # a dead process's pipes close as the kernel tears it down
    gone.register(stdin, select.POLLERR)
    for _ in range(500):
        if gone.poll(10):
            break
    return bool(gone.poll(0))


@contextlib.contextmanager
def _python(program: str) -> Iterator[subprocess.Popen]:
    """``program`` in its own session, as a sandbox starts; killed and reaped after."""
    process = subprocess.Popen(
        [sys.executable, "-c", program],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        kill(process)
        process.wait()
        process.stdin.close()  # a child left alive reads its end and exits
        process.stdout.close()


def test_a_sandbox_killed_while_it_starts_leaves_no_process_running():
    # As bwrap's child before it has set its parent-death signal: in a session of its own,
    # it outlives its parent unless it is killed by pid.
    program = (
        "import os, sys\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    print('started', flush=True)\n"
        "sys.stdin.read()\n"
    )
    with _python(program) as process:
        assert process.stdout.readline() == b"started\n"
        kill(process)
        process.wait()
        assert _nobody_reads(process.stdin)


def test_without_the_kernels_children_lists_a_scan_of_proc_finds_the_same():
    from lumina.tools.sandbox.launcher import _children, _children_by_scan

    program = (
        "import subprocess, sys\n"
        "for _ in range(2):\n"
        "    subprocess.Popen(['sleep', '30'])\n"
        "print(flush=True)\n"
        "sys.stdin.read()\n"
    )
    with _python(program) as process:
        process.stdout.readline()
        listed = sorted(_children(process.pid))
        assert len(listed) == 2
        assert sorted(_children_by_scan(process.pid)) == listed


def test_with_network_allowed_a_tool_reaches_a_server_on_this_machine():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():
        connection, _ = listener.accept()
        with connection:
            connection.sendall(b"hello from the host")

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    source = (
        "import socket\n"
        "def main(port):\n"
        "    with socket.create_connection(('127.0.0.1', port), timeout=3) as c:\n"
        "        return c.recv(100).decode()\n"
    )
    try:
        allowed = run(source, {"port": port}, Limits(timeout_seconds=5, network=True))
        assert allowed.status == ExecutionStatus.SUCCEEDED, allowed
        assert allowed.result == "hello from the host"
        refused = run(source, {"port": port}, Limits(timeout_seconds=5, network=False))
        assert refused.status == ExecutionStatus.FAILED
        assert refused.error.startswith("PermissionError")
    finally:
        listener.close()


DIES_WITH_PARENT = """
import sys, time
sys.path.insert(0, {project!r})
from lumina.tools.sandbox.launcher import SandboxConfig, spawn
process, _ = spawn(SandboxConfig(), network=False)
print(process.pid, flush=True)
time.sleep(120)
"""


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_sandbox_dies_with_the_process_that_started_it():
    parent = subprocess.Popen(
        [sys.executable, "-c", DIES_WITH_PARENT.format(project=str(PROJECT))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        sandbox_pid = int(parent.stdout.readline())
        inner: list[int] = []
        for _ in range(300):  # the sandbox's own processes appear under bwrap
            inner = _children_of(sandbox_pid)
            if inner:
                break
            time.sleep(0.01)
        assert inner
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        for _ in range(500):
            if not any(_alive(pid) for pid in [sandbox_pid, *inner]):
                break
            time.sleep(0.01)
        assert not any(_alive(pid) for pid in [sandbox_pid, *inner])
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


@pytest.mark.parametrize(
    "python", ["/python3", "/nonexistent/python3", str(PROJECT / "bin" / "python3")]
)
def test_an_interpreter_whose_tree_would_expose_the_host_is_refused(python):
    from lumina.tools.sandbox.launcher import bwrap_command

    with pytest.raises(ValueError, match="LUMINA_SANDBOX_PYTHON"):
        bwrap_command(SandboxConfig(python=python), network=False, seccomp_fd=5)


def test_without_a_working_sandbox_python_tools_are_refused():
    broken = SandboxConfig(python="/nonexistent/python3", pool_size=0)
    result = run_python("def main():\n    return 1\n", {}, LIMITS, config=broken)
    assert result.status == ExecutionStatus.REFUSED
    assert result.error_code == "unavailable"
    assert "/nonexistent" not in result.error  # the reason is for operators, in the log


def test_the_weaker_mode_runs_only_when_chosen_and_says_so(settings, monkeypatch, caplog):
    settings.LUMINA_SANDBOX_MODE = "rlimits_only"
    monkeypatch.setattr(runner, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="lumina.tools.sandbox.runner"):
        result = run("import os\ndef main():\n    return os.getuid()\n")
    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.result == settings.LUMINA_SANDBOX_UID  # still another user
    assert any("sandbox.weaker_mode" in record.getMessage() for record in caplog.records)
    memory = run("def main():\n    return len(bytearray(4 * 1024 ** 3))\n")
    assert memory.error_code == "memory"  # rlimits still hold
    status = sandbox_status()
    assert status["mode"] == "rlimits_only"
    assert status["weaker"] is True


def _operator() -> dict:
    user = make_user()
    give_role(user, "Admin")
    secret = token_create(user_id=user.pk, actor=Actor.system("tests")).secret
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


@pytest.mark.django_db
def test_ready_shows_operators_the_sandbox_mode(client, settings):
    body = client.get("/health/ready", **_operator()).json()
    sandbox = body["checks"]["sandbox"]
    assert sandbox["status"] == "ok"
    assert sandbox["mode"] == "bwrap"
    assert sandbox["weaker"] is False
    assert client.get("/health/ready").json()["checks"]["sandbox"] == {"status": "ok"}


@pytest.mark.django_db
def test_ready_shows_the_weaker_mode_to_everyone(client, settings):
    settings.LUMINA_SANDBOX_MODE = "rlimits_only"
    weaker = client.get("/health/ready", **_operator()).json()["checks"]["sandbox"]
    assert weaker["status"] == "weaker"
    assert weaker["mode"] == "rlimits_only"
    assert weaker["weaker"] is True
    assert "rlimits" in weaker["isolation"]
    anonymous = client.get("/health/ready")
    assert anonymous.status_code == 200
    assert anonymous.json()["checks"]["sandbox"] == {"status": "weaker"}


@pytest.mark.django_db
def test_ready_says_python_tools_are_refused_when_the_sandbox_cannot_start(client, settings):
    settings.LUMINA_SANDBOX_PYTHON = "/nonexistent/python3"
    response = client.get("/health/ready", **_operator())
    assert response.status_code == 200  # the rest of Lumina serves; python tools do not
    sandbox = response.json()["checks"]["sandbox"]
    assert sandbox["status"] == "unavailable"
    assert sandbox["python_tools"] == "refused"
    assert "LUMINA_SANDBOX_PYTHON" in sandbox["reason"]  # for operators only
    anonymous = client.get("/health/ready").json()["checks"]["sandbox"]
    assert anonymous == {"status": "unavailable"}


def test_start_up_warms_the_pool_and_never_fails_the_start(settings, caplog):
    settings.LUMINA_SANDBOX_POOL_SIZE = 3
    with caplog.at_level(logging.INFO, logger="lumina.tools.sandbox.runner"):
        runner.sandbox_start()
    assert any("sandbox.ready" in record.getMessage() for record in caplog.records)
    idle = 0
    for _ in range(500):  # filled in the background, before any run
        idle = sandbox_status().get("idle", 0)
        if idle == 3:
            break
        time.sleep(0.01)
    assert idle == 3
    settings.LUMINA_SANDBOX_PYTHON = "/nonexistent/python3"
    with caplog.at_level(logging.ERROR, logger="lumina.tools.sandbox.runner"):
        runner.sandbox_start()  # does not raise
    assert any("sandbox.unavailable" in record.getMessage() for record in caplog.records)


def test_a_forked_worker_starts_its_own_pool():
    # As a Celery prefork worker: the parent's warm sandboxes are not the child's children.
    assert run("def main():\n    return 'parent'\n").result == "parent"
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through its exit code
        ok = False
        try:
            fresh = not runner._pools  # the parent's pools were forgotten at fork
            ok = fresh and run("def main():\n    return 'child'\n").result == "child"
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert run("def main():\n    return 'parent again'\n").result == "parent again"
