"""Attacks on the python-tool sandbox: each is contained, with a clear status, host unharmed.

Where an attack looks for something (a file, a socket, a process), the test first proves
the thing is there to be found on the host, so a passing test never passes vacuously.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings

from lumina.tools.sandbox import run_python
from lumina.tools.types import ExecutionStatus, Limits

PROJECT = Path(__file__).resolve().parents[2]
FAST = Limits(timeout_seconds=3, memory_mb=128, output_bytes=64 * 1024)


def run(source: str, arguments=None, limits: Limits = FAST):
    return run_python(source, arguments or {}, limits)


def everything_seen(result) -> str:
    return f"{result.result!r}{result.stdout}{result.stderr}{result.error}"


READ_FILE = """
def main(path):
    with open(path, "rb") as handle:
        return handle.read().decode("latin-1")
"""

LIST_DIR = """
import os
def main(path):
    return sorted(os.listdir(path))
"""


def test_reading_etc_shadow_fails_and_shows_nothing_of_it():
    host_text = Path("/etc/shadow").read_text()  # the tests run as root: the file is there
    assert "root:" in host_text
    result = run(READ_FILE, {"path": "/etc/shadow"})
    assert result.status == ExecutionStatus.FAILED
    assert result.error_code == "exception"
    assert result.error.startswith(("FileNotFoundError", "PermissionError"))
    assert "root:" not in everything_seen(result)


def test_no_etc_files_but_the_few_a_tool_needs_are_visible():
    assert Path("/etc/passwd").exists()
    result = run(LIST_DIR, {"path": "/etc"})
    assert result.status == ExecutionStatus.SUCCEEDED
    assert set(result.result) <= {"localtime"}


def test_the_project_and_its_env_file_are_not_there():
    assert (PROJECT / "manage.py").is_file()
    canary = PROJECT / f".env.sandbox-canary-{secrets.token_hex(6)}"
    secret = secrets.token_hex(16)
    canary.write_text(f"SECRET_KEY={secret}\n")
    try:
        for path in (str(canary), str(PROJECT / ".env")):
            result = run(READ_FILE, {"path": path})
            assert result.status == ExecutionStatus.FAILED
            assert result.error.startswith("FileNotFoundError")
            assert secret not in everything_seen(result)
        listing = run(LIST_DIR, {"path": str(PROJECT)})
        assert listing.status == ExecutionStatus.FAILED
        assert listing.error.startswith("FileNotFoundError")
    finally:
        canary.unlink()


def test_master_keys_are_not_there():
    keys = Path(settings.DATA_DIR) / "master_keys"
    assert keys.is_file()
    assert keys.read_text().strip()
    result = run(READ_FILE, {"path": str(keys)})
    assert result.status == ExecutionStatus.FAILED
    assert result.error.startswith("FileNotFoundError")
    assert keys.read_text().strip() not in everything_seen(result)


CONNECT_UNIX = """
import socket
def main(path):
    client = socket.socket(socket.AF_UNIX)
    client.connect(path)
    return "connected"
"""


@pytest.mark.django_db
def test_the_database_socket_cannot_be_reached():
    from django.db import connection

    connection.ensure_connection()
    params = connection.get_connection_params()
    host, port = params.get("host") or "127.0.0.1", params.get("port") or 5432
    if host.startswith("/"):
        path = f"{host}/.s.PGSQL.{port}"
        with socket.socket(socket.AF_UNIX) as probe:  # reachable from the host …
            probe.connect(path)
        result = run(CONNECT_UNIX, {"path": path})
        assert result.status == ExecutionStatus.FAILED
        assert result.error.startswith("FileNotFoundError")  # … not from the sandbox
    result = run(CONNECT_TCP, {"host": "127.0.0.1", "port": int(port)})
    assert result.status == ExecutionStatus.FAILED
    assert result.error.startswith("PermissionError")


WRITE_FILE = """
def main(path):
    with open(path, "w") as handle:
        handle.write("written by a tool")
    return path
"""


@pytest.mark.parametrize(
    "directory", ["/usr", "/usr/lib", "/", "/etc", "/proc/sys/kernel", "/root", "/home"]
)
def test_writing_outside_tmp_fails_and_leaves_the_host_alone(directory):
    name = f"sandbox-write-{secrets.token_hex(6)}"
    result = run(WRITE_FILE, {"path": f"{directory.rstrip('/')}/{name}"})
    assert result.status == ExecutionStatus.FAILED
    assert result.error.startswith(("OSError", "PermissionError", "FileNotFoundError"))
    assert not Path(directory, name).exists()


def test_tmp_is_private_to_each_run():
    name = f"/tmp/sandbox-private-{secrets.token_hex(6)}"  # noqa: S108 - the point of the test
    written = run(WRITE_FILE, {"path": name})
    assert written.status == ExecutionStatus.SUCCEEDED
    assert not Path(name).exists()  # not the host's /tmp
    again = run(READ_FILE, {"path": name})
    assert again.status == ExecutionStatus.FAILED  # nor the next run's
    assert again.error.startswith("FileNotFoundError")


CONNECT_TCP = """
import socket
def main(host, port):
    client = socket.create_connection((host, port), timeout=2)
    return "connected"
"""


def test_a_socket_without_network_is_refused():
    redis_up = socket.socket()
    redis_up.settimeout(1)
    try:
        redis_up.connect(("127.0.0.1", 6379))  # the host's Redis is there to be reached
    except OSError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    finally:
        redis_up.close()
    for host in ("127.0.0.1", "169.254.169.254", "::1"):
        result = run(CONNECT_TCP, {"host": host, "port": 6379})
        assert result.status == ExecutionStatus.FAILED
        assert result.error.startswith("PermissionError"), result.error


def test_with_network_allowed_the_files_stay_hidden():
    # A tool allowed the network shares the host's interfaces (that is what it asked
    # for); the other layers still hold.
    result = run(READ_FILE, {"path": "/etc/shadow"}, Limits(timeout_seconds=3, network=True))
    assert result.status == ExecutionStatus.FAILED
    assert result.error.startswith("FileNotFoundError")


def _host_processes_named(name: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == name:
                    found.append(int(entry))
            except OSError:
                continue
    return found


FORK_BOMB = """
import os
def main(name):
    with open("/proc/self/comm", "w") as comm:
        comm.write(name)
    while True:
        try:
            os.fork()
        except OSError:
            pass
"""


def test_a_fork_bomb_is_capped_and_ends_with_its_sandbox():
    name = f"bomb{secrets.token_hex(5)}"
    limits = Limits(timeout_seconds=4, max_processes=12, memory_mb=64)
    outcome = {}
    runner = threading.Thread(
        target=lambda: outcome.update(r=run(FORK_BOMB, {"name": name}, limits))
    )
    runner.start()
    seen = 0
    for _ in range(300):  # up to ~3 s: the bomb's processes are visible from the host …
        seen = max(seen, len(_host_processes_named(name)))
        if seen or not runner.is_alive():
            break
        time.sleep(0.01)
    runner.join()
    assert seen >= 1
    result = outcome["r"]
    assert result.status == ExecutionStatus.TIMEOUT
    assert result.error_code == "wall_clock"
    for _ in range(500):  # … and all are gone once the run has ended
        left = _host_processes_named(name)
        if not left:
            break
        time.sleep(0.01)
    assert left == []
    assert run("def main():\n    return 'fine'\n").result == "fine"


PROCESS_COUNT = """
import os, time
def main():
    children = 0
    try:
        for _ in range(200):
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
            children += 1
    except OSError as exc:
        return {"children": children, "error": type(exc).__name__}
    return {"children": children, "error": None}
"""


def test_the_process_limit_holds_inside_one_sandbox():
    result = run(PROCESS_COUNT, limits=Limits(timeout_seconds=5, max_processes=8))
    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.result["error"] == "BlockingIOError"
    assert result.result["children"] < 8


def test_allocating_4_gib_is_a_memory_limit():
    source = "def main():\n    block = bytearray(4 * 1024 ** 3)\n    return len(block)\n"
    result = run(source)
    assert result.status == ExecutionStatus.LIMIT_EXCEEDED
    assert result.error_code == "memory"
    assert result.result is None


def test_an_infinite_loop_is_stopped_at_the_wall_clock():
    result = run("def main():\n    while True:\n        pass\n", limits=Limits(timeout_seconds=1.5))
    assert result.status == ExecutionStatus.TIMEOUT
    assert result.error_code in ("wall_clock", "cpu_time")


def test_an_infinite_loop_is_stopped_by_its_cpu_limit():
    limits = Limits(timeout_seconds=20, cpu_seconds=1)
    result = run("def main():\n    while True:\n        pass\n", limits=limits)
    assert result.status == ExecutionStatus.TIMEOUT
    assert result.error_code == "cpu_time"


def test_printing_100_mb_stops_at_the_output_cap():
    source = "def main():\n    print('x' * 100_000_000)\n    return 'done'\n"
    result = run(source, limits=Limits(timeout_seconds=10, output_bytes=100_000))
    assert result.status == ExecutionStatus.LIMIT_EXCEEDED
    assert result.error_code == "output_size"
    assert result.stdout_truncated
    assert len(result.stdout) == 100_000
    assert result.result is None


def test_a_result_over_the_cap_is_refused():
    source = "def main():\n    return 'y' * 500_000\n"
    result = run(source, limits=Limits(timeout_seconds=5, output_bytes=100_000))
    assert result.status == ExecutionStatus.LIMIT_EXCEEDED
    assert result.error_code == "result_size"
    assert result.result is None


def test_sleeping_past_the_timeout_is_stopped():
    result = run("import time\ndef main():\n    time.sleep(60)\n", limits=Limits(timeout_seconds=1))
    assert result.status == ExecutionStatus.TIMEOUT
    assert result.error_code == "wall_clock"


def test_a_large_file_in_tmp_stops_at_the_file_size_limit():
    source = (
        "def main():\n"
        "    with open('/tmp/big', 'wb') as handle:\n"
        "        handle.write(b'z' * (8 * 1024 * 1024))\n"
    )
    result = run(source, limits=Limits(timeout_seconds=5, max_file_bytes=1024 * 1024))
    assert result.status in (ExecutionStatus.FAILED, ExecutionStatus.LIMIT_EXCEEDED)
    assert result.status != ExecutionStatus.SUCCEEDED


SYSCALLS = """
import ctypes, errno
def main():
    libc = ctypes.CDLL(None, use_errno=True)
    answers = {}
    for name, call in {
        "unshare": lambda: libc.unshare(0x10000000),
        "mount": lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None),
        "ptrace": lambda: libc.ptrace(16, 1, 0, 0),
        "keyctl": lambda: libc.syscall(250, 0, 0, 0, 0),
    }.items():
        ctypes.set_errno(0)
        answers[name] = [call(), errno.errorcode.get(ctypes.get_errno(), "")]
    return answers
"""


def test_seccomp_refuses_namespace_mount_trace_and_key_calls():
    result = run(SYSCALLS)
    assert result.status == ExecutionStatus.SUCCEEDED, result
    for name, (returned, error) in result.result.items():
        assert returned == -1, name
        assert error == "EPERM", name


WHO_AM_I = """
import os
def main():
    status = dict(
        line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines()
        if ":\\t" in line
    )
    return {
        "uid": os.getuid(),
        "cap_eff": status["CapEff"].strip(),
        "seccomp": status["Seccomp"].strip(),
        "no_new_privs": status["NoNewPrivs"].strip(),
        "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "hostname": os.uname().nodename,
    }
"""


def test_the_tool_is_an_unprivileged_user_alone_in_its_pid_namespace():
    result = run(WHO_AM_I)
    assert result.status == ExecutionStatus.SUCCEEDED
    seen = result.result
    assert seen["uid"] == settings.LUMINA_SANDBOX_UID
    assert int(seen["cap_eff"], 16) == 0
    assert seen["seccomp"] == "2"  # filter mode
    assert seen["no_new_privs"] == "1"
    assert seen["pids"] == [1, 2]  # bwrap's init and the tool: no host process
    assert seen["hostname"] == "sandbox"


def test_a_host_process_cannot_be_signalled():
    source = "import os\ndef main(pid):\n    os.kill(pid, 9)\n    return 'killed'\n"
    result = run(source, {"pid": os.getpid()})
    assert result.status == ExecutionStatus.FAILED
    assert result.error.startswith(("ProcessLookupError", "PermissionError"))


FORGED_RESULT = """
import os, sys
def main(line):
    os.write(int(sys.argv[1]), line.encode() + b"\\n")  # the harness's result pipe
    os._exit(0)
"""


def test_a_result_line_forged_by_the_tool_cannot_break_the_server():
    # The tool can reach the result pipe: a well-formed line is its own result to give …
    forged = run(FORGED_RESULT, {"line": '{"ok": true, "result": 42}'})
    assert forged.status == ExecutionStatus.SUCCEEDED
    assert forged.result == 42
    # … and one nested past any parser's depth is a failed run, not a server error.
    limits = Limits(timeout_seconds=5, output_bytes=1_000_000)
    deep = run(FORGED_RESULT, {"line": "[" * 200_000}, limits)
    assert deep.status == ExecutionStatus.FAILED
    assert deep.error_code == "exit"
    assert deep.result is None


ENVIRONMENT = """
import os
def main():
    seen = {"environ": dict(os.environ)}
    for pid in ("1", "self"):
        try:
            seen[pid] = open(f"/proc/{pid}/environ", "rb").read().decode("latin-1")
        except OSError as exc:
            seen[pid] = type(exc).__name__
    return seen
"""


def test_the_server_s_environment_does_not_reach_the_tool(settings, monkeypatch):
    canary = secrets.token_hex(16)
    monkeypatch.setenv("LUMINA_SANDBOX_TEST_CANARY", canary)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://user:{canary}@127.0.0.1/db")
    settings.LUMINA_SANDBOX_POOL_SIZE = 0  # a sandbox started now, with the canary set
    assert os.environ["LUMINA_SANDBOX_TEST_CANARY"] == canary
    result = run(ENVIRONMENT)
    assert result.status == ExecutionStatus.SUCCEEDED
    assert set(result.result["environ"]) <= {"PATH", "HOME", "LANG", "PWD"}
    assert canary not in everything_seen(result)
