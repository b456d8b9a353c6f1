"""Subprocesses of a benchmark: start, stop, find the web process, read its CPU and RSS.

``Processes`` starts each child in a session of its own with its output in a log file,
and stops them all (SIGINT, then SIGKILL) at the end. ``cpu_of`` reads a process's CPU
time split into its main thread (an ASGI server's event loop) and the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import psutil

ROOT = Path(__file__).resolve().parents[2]
STOP_TIMEOUT = 20.0
MIB = 1024 * 1024

T = TypeVar("T")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(root: Path = ROOT) -> dict[str, str]:
    """This environment without Lumina, Celery, database or Redis settings of the caller,
    with ``root`` (a Lumina checkout) on the Python path."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LUMINA_", "CELERY_"))
        and key not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    if os.environ.get("LUMINA_DATA_DIR"):
        env["LUMINA_DATA_DIR"] = os.environ["LUMINA_DATA_DIR"]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    return env


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no output)"


class Processes:
    """The subprocesses a benchmark started; stopped (SIGINT, then SIGKILL) at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(
        self, name: str, command: list[str], env: dict[str, str], cwd: Path = ROOT
    ) -> subprocess.Popen:
        out, err = self.logs / f"{name}.out", self.logs / f"{name}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            # Its own session: a Ctrl-C in the terminal reaches only the benchmark, which
            # then stops the subprocesses in order.
            process = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        self.started.append((name, process))
        return process

    def failure(self, name: str, process: subprocess.Popen, what: str) -> RuntimeError:
        return RuntimeError(
            f"{name} {what} (exit code {process.poll()}); the end of its stderr:\n"
            + tail(self.logs / f"{name}.err")
        )

    def stop(self, process: subprocess.Popen) -> None:
        """Stop one of them (SIGINT, then SIGKILL) and forget it."""
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        self.started = [(n, p) for n, p in self.started if p is not process]

    def stop_all(self) -> None:
        for _name, process in reversed(self.started):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for _name, process in reversed(self.started):
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.started.clear()


def live_status(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=2) as answer:
            return answer.status
    except (OSError, urllib.error.URLError):
        return None


def listener_pid(process: subprocess.Popen, port: int) -> int:
    """The pid of the process listening on ``port``: ``process`` or one of its children."""
    root = psutil.Process(process.pid)
    for candidate in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            for conn in candidate.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                    return candidate.pid
    raise RuntimeError(f"no process of pid {process.pid} listens on {port}")


def rss_mib(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / MIB


@dataclasses.dataclass(frozen=True)
class Cpu:
    """CPU seconds of a process: its main thread (the event loop) and all threads."""

    loop: float
    total: float

    @property
    def background(self) -> float:
        return self.total - self.loop

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.loop - other.loop, self.total - other.total)


ZERO_CPU = Cpu(0.0, 0.0)


def cpu_of(pid: int) -> Cpu:
    process = psutil.Process(pid)
    times = process.cpu_times()  # every thread, finished ones included
    loop = next((t.user_time + t.system_time for t in process.threads() if t.id == pid), 0.0)
    return Cpu(loop, times.user + times.system)


def machine_load() -> str:
    """The 1-minute load average and the CPUs, for the closing line of a report."""
    return f"{os.cpu_count()} CPUs, 1-min load average {os.getloadavg()[0]:.1f}"


def run_loop(coroutine: Awaitable[T]) -> T:
    try:
        import uvloop  # the lean loop keeps the load generator from being the bottleneck
    except ImportError:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    return uvloop.run(coroutine)  # type: ignore[arg-type]


def wait_until(check, *, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False
