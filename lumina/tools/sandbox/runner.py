"""``run_python``: one python tool run in a sandbox, reported as a ``SandboxResult``.

The job goes to the sandbox's harness on stdin; its stdout, stderr and result pipe are read
here together, each capped, until the harness's one-line result arrives (the sandbox's
teardown is left to a reaper thread), the sandbox ends without one, a cap is passed, or the
wall-clock deadline passes (then the whole sandbox is killed: its PID namespace goes with
its first process). Every way a
run can end maps to one status and a short ``error_code``; nothing raises for the tool's
own failure.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import marshal
import math
import os
import queue
import select
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from typing import Any

import structlog
from django.conf import settings

from lumina.tools.sandbox.launcher import (
    MODE_BWRAP,
    MODE_RLIMITS_ONLY,
    SandboxConfig,
    kill,
)
from lumina.tools.sandbox.pool import Sandbox, SandboxPool, start
from lumina.tools.types import ExecutionStatus, Limits

logger = structlog.get_logger(__name__)

ENTRYPOINT = "main"
# Address space the interpreter itself maps before the tool allocates anything.
INTERPRETER_BYTES = 64 * 1024 * 1024
_CHUNK = 65536


@dataclasses.dataclass(frozen=True)
class SandboxResult:
    """How one run ended.

    ``status`` is an ``ExecutionStatus``; ``error_code`` says which limit or failure:
    ``exception``, ``exit``, ``entrypoint``, ``result`` (not JSON), ``memory``,
    ``cpu_time``, ``wall_clock``, ``output_size``, ``result_size``, ``crashed``,
    ``arguments`` (not JSON values), ``unavailable``. ``error`` is a message safe to show
    the caller.
    """

    status: ExecutionStatus
    result: Any = None
    error_code: str = ""
    error: str = ""
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_ms: float = 0.0
    resource_use: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status == ExecutionStatus.SUCCEEDED


class SandboxUnavailableError(RuntimeError):
    """bwrap cannot start here and the operator has not opted into a weaker mode."""


def _config() -> SandboxConfig:
    return SandboxConfig(
        mode=settings.LUMINA_SANDBOX_MODE,
        python=settings.LUMINA_SANDBOX_PYTHON or "",
        uid=settings.LUMINA_SANDBOX_UID,
        gid=settings.LUMINA_SANDBOX_GID,
        pool_size=settings.LUMINA_SANDBOX_POOL_SIZE,
    )


_probed: dict[SandboxConfig, tuple[str, float]] = {}
PROBE_RETRY_SECONDS = 30.0


def _probe(config: SandboxConfig) -> str:
    """'' when a sandbox of this configuration starts and runs, else why not.

    A success is kept; a failure is retried after PROBE_RETRY_SECONDS.
    """
    known = _probed.get(config)
    if known is not None and (not known[0] or time.monotonic() - known[1] < PROBE_RETRY_SECONDS):
        return known[0]
    try:
        sandbox = start(config, network=False)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
    else:
        job = {"source": "def main():\n    return 1\n", "arguments": {}}
        outcome = _execute(sandbox, job, Limits(timeout_seconds=10), started=time.perf_counter())
        reason = ""
        if not (outcome.succeeded and outcome.result == 1):
            reason = f"{outcome.error_code}: {outcome.error} {outcome.stderr[-300:]}".strip()
    _probed[config] = (reason, time.monotonic())
    return reason


_pools: dict[SandboxConfig, SandboxPool] = {}
_pools_lock = threading.Lock()
_warned: set[SandboxConfig] = set()


def _pool(config: SandboxConfig) -> SandboxPool:
    with _pools_lock:
        pool = _pools.get(config)
        if pool is None:
            pool = _pools[config] = SandboxPool(config)
        return pool


def _forget_pools_in_child() -> None:
    # A forked child cannot wait for its parent's sandboxes: it starts its own.
    global _reaper_instance
    _pools.clear()
    _reaper_instance = None


os.register_at_fork(after_in_child=_forget_pools_in_child)


def sandbox_start() -> None:
    """Web start-up: log which sandbox runs python tools, and start its warm pool.

    Never fails the start: without a sandbox only python tools are refused.
    """
    config = _config()
    try:
        ensure_available(config)
    except SandboxUnavailableError as exc:
        logger.error("sandbox.unavailable", mode=config.mode, reason=str(exc))
        return
    logger.info("sandbox.ready", mode=config.mode, pool_size=config.pool_size)
    _pool(config).warm()


def close_pools() -> None:
    """End the idle sandboxes and wait for them (shutdown hooks, and at exit)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


# Processes without lifecycle hooks (manage.py commands, tests) reap theirs too.
atexit.register(close_pools)


def sandbox_status() -> dict[str, Any]:
    """What /health/ready shows operators: the mode, whether it is weaker, whether it runs."""
    config = _config()
    _warn_if_weaker(config)
    reason = _probe(config)
    status: dict[str, Any] = {
        "mode": config.mode,
        "weaker": config.mode != MODE_BWRAP,
        "available": not reason,
        "pool_size": config.pool_size,
    }
    if config.mode == MODE_BWRAP:
        status["isolation"] = "bwrap namespaces, seccomp, rlimits, unprivileged user"
    else:
        status["isolation"] = "rlimits and an unprivileged user only (operator opt-in)"
    if reason:
        status["reason"] = reason
    with _pools_lock:
        pool = _pools.get(config)
    if pool is not None:
        status["idle"] = pool.idle
        status["cold_starts"] = pool.cold_starts  # runs that found no warm sandbox
    return status


def _warn_if_weaker(config: SandboxConfig) -> None:
    if config.mode == MODE_RLIMITS_ONLY and config not in _warned:
        _warned.add(config)
        logger.warning(
            "sandbox.weaker_mode",
            mode=config.mode,
            isolation="rlimits and an unprivileged user only: no namespaces, no seccomp",
        )


def ensure_available(config: SandboxConfig | None = None) -> SandboxConfig:
    config = config or _config()
    _warn_if_weaker(config)
    reason = _probe(config)
    if reason:
        raise SandboxUnavailableError(reason)
    return config


def run_python(
    source: str,
    arguments: Any,
    limits: Limits,
    *,
    config: SandboxConfig | None = None,
) -> SandboxResult:
    """Run ``main(**arguments)`` from ``source`` in a sandbox, within ``limits``.

    ``source`` must define a function ``main``; ``arguments`` is a JSON object (its keys
    become keyword arguments) or another JSON value (passed as the one argument). The
    returned value must be JSON. Nothing here raises for the tool's own failure.
    """
    started = time.perf_counter()
    try:
        config = ensure_available(config)
        sandbox = start(config, network=True) if limits.network else _pool(config).acquire()
    except SandboxUnavailableError as exc:
        logger.error("sandbox.unavailable", reason=str(exc))
        return SandboxResult(
            status=ExecutionStatus.REFUSED,
            error_code="unavailable",
            error="Python tools cannot run: no sandbox is available on this server.",
            duration_ms=_ms(started),
        )
    job = {"source": source, "arguments": arguments}
    try:
        return _execute(sandbox, job, limits, started=started)
    except _NotDelivered:
        # A warm sandbox that died while idle (killed from outside): one fresh try.
        sandbox = start(config, network=bool(limits.network))
        return _execute(sandbox, job, limits, started=started)


class _NotDelivered(Exception):
    """The sandbox was gone before its job could be written."""


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _job_limits(limits: Limits) -> dict[str, Any]:
    cpu = limits.cpu_seconds if limits.cpu_seconds is not None else limits.timeout_seconds
    return {
        "cpu_seconds": max(1, math.ceil(cpu)),
        "memory_bytes": int(limits.memory_mb) * 1024 * 1024 + INTERPRETER_BYTES,
        "max_file_bytes": int(limits.max_file_bytes),
        "max_open_files": int(limits.max_open_files),
        "max_processes": int(limits.max_processes),
    }


class _Stream:
    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.over = False

    def add(self, chunk: bytes) -> None:
        room = self.cap - len(self.data)
        if len(chunk) > room:
            self.over = True
        self.data += chunk[: max(room, 0)]

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def _execute(
    sandbox: Sandbox, job: dict[str, Any], limits: Limits, *, started: float
) -> SandboxResult:
    process = sandbox.process
    try:
        # marshal, not JSON: the harness then needs no json import (see harness.py).
        payload = marshal.dumps({**job, "entrypoint": ENTRYPOINT, "limits": _job_limits(limits)})
    except ValueError:
        sandbox.discard()
        return SandboxResult(
            status=ExecutionStatus.FAILED,
            error_code="arguments",
            error="The arguments are not JSON values.",
            duration_ms=_ms(started),
        )
    deadline = time.monotonic() + float(limits.timeout_seconds)
    cap = int(limits.output_bytes)
    streams = {
        "stdout": _Stream(cap),
        "stderr": _Stream(cap),
        "result": _Stream(cap),
    }
    ended_by = ""  # "wall_clock" or "<stream>_size" when this side stopped the run
    try:
        # The harness reads the whole job before doing anything, so this cannot deadlock.
        process.stdin.write(payload)
        process.stdin.close()
    except OSError:  # BrokenPipeError: nobody reads the job
        sandbox.discard()
        raise _NotDelivered from None
    files = {
        process.stdout.fileno(): "stdout",
        process.stderr.fileno(): "stderr",
        sandbox.result_fd: "result",
    }
    complete = False
    selector = selectors.DefaultSelector()
    for fd, name in files.items():
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ, name)
    try:
        while files and not (ended_by or complete):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                ended_by = "wall_clock"
                break
            for key, _ in selector.select(timeout=remaining):
                ended_by = _read(key.fd, key.data, streams, files, selector)
                # The harness flushes the tool's output before its one-line result.
                complete = streams["result"].data.endswith(b"\n")
                if ended_by or complete:
                    break
        if complete:
            # What the tool printed is already in the pipes: take it without waiting for
            # the sandbox to end (its teardown is the reaper's).
            for fd, name in list(files.items()):
                if name != "result":
                    while fd in files and not ended_by:
                        ended_by = _read(fd, name, streams, files, selector)
                        if not _readable(fd):
                            break
    finally:
        selector.close()
    if complete and not ended_by:
        _reaper().put(sandbox)
        return _result(None, streams, "", {}, limits, started)
    if ended_by:
        kill(process)
    usage = _reap(process, deadline if not ended_by else time.monotonic() + 5)
    _close(sandbox)
    return _result(process.returncode, streams, ended_by, usage, limits, started)


def _readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def _read(
    fd: int,
    name: str,
    streams: dict[str, _Stream],
    files: dict[int, str],
    selector: selectors.BaseSelector,
) -> str:
    """Read what is there on one pipe; the limit it broke, if any."""
    try:
        chunk = os.read(fd, _CHUNK)
    except BlockingIOError:
        return ""
    if not chunk:
        selector.unregister(fd)
        files.pop(fd)
        return ""
    stream = streams[name]
    stream.add(chunk)
    if stream.over:
        return "result_size" if name == "result" else "output_size"
    return ""


def _close(sandbox: Sandbox) -> None:
    with contextlib.suppress(OSError):
        os.close(sandbox.result_fd)
    for stream in (sandbox.process.stdout, sandbox.process.stderr):
        with contextlib.suppress(OSError):
            stream.close()


class _Reaper:
    """Ends and waits for finished sandboxes off the caller's path."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Sandbox] = queue.SimpleQueue()
        threading.Thread(target=self._run, name="lumina-sandbox-reaper", daemon=True).start()

    def put(self, sandbox: Sandbox) -> None:
        self._queue.put(sandbox)

    def _run(self) -> None:
        while True:
            sandbox = self._queue.get()
            try:
                kill(sandbox.process)
                _reap(sandbox.process, time.monotonic() + 5)
            finally:
                _close(sandbox)


_reaper_instance: _Reaper | None = None
_reaper_lock = threading.Lock()


def _reaper() -> _Reaper:
    global _reaper_instance
    with _reaper_lock:
        if _reaper_instance is None:
            _reaper_instance = _Reaper()
        return _reaper_instance


def _reap(process: subprocess.Popen, deadline: float) -> dict[str, Any]:
    """Wait for the sandbox's outer process, killing it at the deadline; its rusage."""
    while True:
        try:
            pid, status, rusage = os.wait4(process.pid, os.WNOHANG)
        except ChildProcessError:
            process.returncode = process.returncode if process.returncode is not None else -9
            return {}
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return {
                "cpu_user_s": round(rusage.ru_utime, 4),
                "cpu_system_s": round(rusage.ru_stime, 4),
                "max_rss_kb": rusage.ru_maxrss,
            }
        if time.monotonic() >= deadline:
            kill(process)
            deadline = time.monotonic() + 5
        time.sleep(0.001)


def _killed_by(returncode: int | None) -> int:
    """The signal that ended the tool: bwrap reports it as 128+N, Popen as -N."""
    if returncode is None:
        return 0
    if returncode < 0:
        return -returncode
    if returncode > 128:
        return returncode - 128
    return 0


def _result(
    returncode: int | None,
    streams: dict[str, _Stream],
    ended_by: str,
    usage: dict[str, Any],
    limits: Limits,
    started: float,
) -> SandboxResult:
    common = {
        "stdout": streams["stdout"].text(),
        "stderr": streams["stderr"].text(),
        "stdout_truncated": streams["stdout"].over,
        "stderr_truncated": streams["stderr"].over,
    }
    message: dict[str, Any] | None = None
    if not ended_by and streams["result"].data:
        try:
            message = json.loads(bytes(streams["result"].data))
        except (ValueError, RecursionError):  # the tool may write on this pipe itself
            message = None
    if isinstance(message, dict) and isinstance(message.get("usage"), dict):
        usage = message["usage"]
    else:
        # Without the harness's own figures, the CPU that bwrap's process tree reported
        # (its max RSS is that of the server's fork before exec, so it is left out).
        usage = {key: value for key, value in usage.items() if key != "max_rss_kb"}
    if returncode is not None:
        usage = {**usage, "exit_code": returncode}
    fields = {**common, "duration_ms": _ms(started), "resource_use": usage}

    def failed(status: ExecutionStatus, code: str, error: str) -> SandboxResult:
        return SandboxResult(status=status, error_code=code, error=error, **fields)

    if ended_by == "wall_clock":
        return failed(
            ExecutionStatus.TIMEOUT,
            "wall_clock",
            f"The tool ran longer than its {limits.timeout_seconds:g} s timeout and was stopped.",
        )
    if ended_by == "output_size":
        return failed(
            ExecutionStatus.LIMIT_EXCEEDED,
            "output_size",
            f"The tool printed more than {limits.output_bytes} bytes and was stopped.",
        )
    if ended_by == "result_size":
        return failed(
            ExecutionStatus.LIMIT_EXCEEDED,
            "result_size",
            f"The tool's result is larger than {limits.output_bytes} bytes.",
        )
    if isinstance(message, dict) and message.get("ok") is True:
        result = message.get("result")
        return SandboxResult(status=ExecutionStatus.SUCCEEDED, result=result, **fields)
    if isinstance(message, dict) and message.get("ok") is False:
        kind = str(message.get("kind", "exception"))
        text = str(message.get("message", ""))[:2000]
        if kind == "memory":
            return failed(
                ExecutionStatus.LIMIT_EXCEEDED,
                "memory",
                f"The tool needed more than its {limits.memory_mb} MB of memory.",
            )
        return failed(ExecutionStatus.FAILED, kind, text)
    killed = _killed_by(returncode)
    cpu_limit = _job_limits(limits)["cpu_seconds"]
    cpu_used = usage.get("cpu_user_s", 0) + usage.get("cpu_system_s", 0)
    # SIGXCPU at the soft CPU limit, SIGKILL at the hard one a second later.
    if killed == signal.SIGXCPU or (killed == signal.SIGKILL and cpu_used >= cpu_limit):
        return failed(
            ExecutionStatus.TIMEOUT,
            "cpu_time",
            f"The tool used more than its {cpu_limit} s of CPU time.",
        )
    if killed:
        return failed(ExecutionStatus.FAILED, "crashed", f"The tool was ended by signal {killed}.")
    return failed(
        ExecutionStatus.FAILED,
        "exit",
        f"The tool's process exited with status {returncode} before returning a result.",
    )
