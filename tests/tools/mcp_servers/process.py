"""Start the test MCP servers as real processes."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CALCULATOR = "tests.tools.mcp_servers.calculator"


def stdio_command(module: str = CALCULATOR) -> list[str]:
    return [sys.executable, "-m", module]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, deadline_seconds: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@contextlib.contextmanager
def http_server(module: str = CALCULATOR) -> Iterator[str]:
    """The module's server on streamable HTTP at 127.0.0.1; yields its /mcp URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--http", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.kill()
        process.wait(10)


def script_command(module: str = CALCULATOR) -> list[str]:
    """The server run as a script (no working directory needed): ``python path/to/x.py``."""
    return [sys.executable, str(ROOT / (module.replace(".", "/") + ".py"))]
