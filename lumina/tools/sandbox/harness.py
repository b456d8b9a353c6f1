"""The program that runs inside a sandbox: one job, then exit.

Started ahead of time (``python -I -S -c <this file's text> <result fd>``) so a warm sandbox
has paid for the interpreter and these imports. It blocks on stdin for one JSON job
``{"source", "arguments", "entrypoint", "limits"}``, lowers its rlimits (they cannot be
raised again), runs the tool's entry point, and writes one JSON message on the result fd:
``{"ok": true, "result": ...}`` or ``{"ok": false, "kind", "message"}``, with the resource
use. The tool's own prints go to stdout/stderr, which the parent reads and caps.

Standard library only, and no Lumina import: nothing else is mounted in the sandbox.
"""

import json
import os
import resource
import sys
import traceback


def _set_limit(which: int, value: int) -> None:
    _soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


def _apply_limits(limits: dict) -> None:
    cpu = max(1, int(-(-float(limits["cpu_seconds"]) // 1)))
    # SIGXCPU at the soft limit; the hard limit one second later is SIGKILL.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    _set_limit(resource.RLIMIT_CORE, 0)
    _set_limit(resource.RLIMIT_AS, int(limits["memory_bytes"]))
    _set_limit(resource.RLIMIT_FSIZE, int(limits["max_file_bytes"]))
    _set_limit(resource.RLIMIT_NOFILE, int(limits["max_open_files"]))
    _set_limit(resource.RLIMIT_NPROC, int(limits["max_processes"]))


def _usage() -> dict:
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "cpu_user_s": round(me.ru_utime + children.ru_utime, 4),
        "cpu_system_s": round(me.ru_stime + children.ru_stime, 4),
        "max_rss_kb": max(me.ru_maxrss, children.ru_maxrss),
    }


def _run(job: dict) -> dict:
    namespace = {"__name__": "__tool__", "__builtins__": __builtins__}
    try:
        # Running this source is the harness's purpose; the sandbox around it is the guard.
        exec(compile(job["source"], "<tool>", "exec"), namespace)  # noqa: S102
        entry = namespace.get(job["entrypoint"])
        if not callable(entry):
            return {
                "ok": False,
                "kind": "entrypoint",
                "message": f"the source defines no function '{job['entrypoint']}'",
            }
        arguments = job["arguments"]
        value = entry(**arguments) if isinstance(arguments, dict) else entry(arguments)
        return {"ok": True, "result": value}
    except MemoryError:
        return {"ok": False, "kind": "memory", "message": "MemoryError: memory limit reached"}
    except SystemExit as exc:
        return {"ok": False, "kind": "exit", "message": f"the tool exited ({exc.code!r})"}
    except BaseException as exc:  # the tool's own failure, whatever it is, is its result
        # The tool's frames only: the first one is this harness.
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
        return {"ok": False, "kind": "exception", "message": f"{type(exc).__name__}: {exc}"}


def main() -> None:
    result_fd = int(sys.argv[1])
    harness_pid = os.getpid()
    job = json.loads(sys.stdin.buffer.read())
    os.chdir("/tmp")  # noqa: S108 - the sandbox's own private tmpfs
    _apply_limits(job["limits"])
    outcome = _run(job)
    if os.getpid() != harness_pid:
        os._exit(0)  # a process the tool forked came back through here: only one result
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: S112 - a stream the tool closed; the result still goes
            continue
    outcome["usage"] = _usage()
    try:
        payload = json.dumps(outcome, allow_nan=False, separators=(",", ":"))
    except MemoryError:
        payload = json.dumps({"ok": False, "kind": "memory", "message": "MemoryError"})
    except (TypeError, ValueError) as exc:
        payload = json.dumps(
            {"ok": False, "kind": "result", "message": f"the result is not JSON: {exc}"}
        )
    data = payload.encode() + b"\n"  # the end of the one message; JSON escapes newlines
    while data:
        data = data[os.write(result_fd, data) :]
    os._exit(0)


if __name__ == "__main__":
    main()
