"""The loopback upstream the benchmarks call: the OpenAI mock of the tests, in its own
process on uvloop (``python -m tests.providers.upstreams.openai``)."""

from __future__ import annotations

import subprocess
import sys
import time

from benchmarks._support.processes import Processes, clean_env

MOCK_START_TIMEOUT = 20.0


def start_mock(
    processes: Processes, *, chunks: int = 20, interval: float = 0.005
) -> tuple[str, subprocess.Popen]:
    """Start the OpenAI mock; return its root URL (``http://127.0.0.1:<port>``) once it
    listens. Streamed answers are ``chunks`` content chunks ``interval`` seconds apart,
    then the finish chunk, the usage chunk and ``[DONE]``."""
    command = [sys.executable, "-m", "tests.providers.upstreams.openai", "--port", "0"]
    command += ["--chunks", str(chunks), "--interval", str(interval)]
    process = processes.start("mock", command, clean_env())
    out = processes.logs / "mock.out"
    deadline = time.monotonic() + MOCK_START_TIMEOUT
    while time.monotonic() < deadline:
        for line in out.read_text(errors="replace").splitlines():
            if line.startswith("listening on "):
                return line.removeprefix("listening on ").strip(), process
        if process.poll() is not None:
            raise processes.failure("mock", process, "exited before listening")
        time.sleep(0.05)
    raise processes.failure("mock", process, f"did not listen within {MOCK_START_TIMEOUT:.0f}s")
