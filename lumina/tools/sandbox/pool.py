"""A pool of warm sandboxes: started ahead, each used for exactly one run.

Starting bwrap and an interpreter costs tens of milliseconds; a warm sandbox has paid that
and waits for its job on stdin, so a run costs only the job itself. A sandbox is never
reused (no state survives from one tool run to the next): the pool hands it out and a
background thread starts its replacement. Only sandboxes without network are kept warm;
the rarer tools with network start one per run.

One pool per process: a forked child (a Celery worker) starts its own.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import subprocess
import threading
from dataclasses import dataclass

from lumina.tools.sandbox.launcher import SandboxConfig, kill, spawn

logger = logging.getLogger(__name__)


@dataclass
class Sandbox:
    process: subprocess.Popen
    result_fd: int

    def discard(self) -> None:
        kill(self.process)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        with contextlib.suppress(OSError):
            os.close(self.result_fd)
        with contextlib.suppress(Exception):
            self.process.wait(timeout=5)


def start(config: SandboxConfig, *, network: bool) -> Sandbox:
    process, result_fd = spawn(config, network=network)
    return Sandbox(process=process, result_fd=result_fd)


class SandboxPool:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._idle: collections.deque[Sandbox] = collections.deque()
        self._lock = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.started = 0
        self.cold_starts = 0

    def acquire(self) -> Sandbox:
        """A started sandbox without network: a warm one if any, else one started now."""
        with self._lock:
            self._ensure_thread()
            while self._idle:
                sandbox = self._idle.popleft()
                self._lock.notify_all()
                if sandbox.process.poll() is None:
                    return sandbox
                sandbox.discard()
            self._lock.notify_all()
            # None idle: start one here rather than wait; operators see the count.
            self.cold_starts += 1
        return start(self.config, network=False)

    def warm(self) -> None:
        """Start filling the pool now rather than at the first run."""
        with self._lock:
            self._ensure_thread()

    @property
    def idle(self) -> int:
        return len(self._idle)

    def _ensure_thread(self) -> None:
        if self._thread is None and self.config.pool_size > 0 and not self._closed:
            self._thread = threading.Thread(
                target=self._refill, name="lumina-sandbox-pool", daemon=True
            )
            self._thread.start()

    def _refill(self) -> None:
        while True:
            with self._lock:
                while not self._closed and len(self._idle) >= self.config.pool_size:
                    self._lock.wait()
                if self._closed:
                    return
            try:
                sandbox = start(self.config, network=False)
            except Exception:
                logger.exception("sandbox.pool_start_failed")
                with self._lock:
                    self._lock.wait(timeout=1.0)  # do not spin when sandboxes cannot start
                continue
            with self._lock:
                if self._closed:
                    sandbox.discard()
                    return
                self.started += 1
                self._idle.append(sandbox)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = list(self._idle), collections.deque()
            self._lock.notify_all()
        for sandbox in idle:
            sandbox.discard()
