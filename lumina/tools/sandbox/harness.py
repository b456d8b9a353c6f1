"""The program that runs inside a sandbox: one job, then exit.

Started ahead of time (``python -I -S -c <this file's text> <result fd>``) so a warm sandbox
has paid for the interpreter and these imports. It blocks on stdin for one marshalled job
``{"source", "arguments", "entrypoint", "limits"}`` (written by the server, so marshal is
safe here), lowers its rlimits (they cannot be raised again), runs the tool's entry point,
and writes one line of JSON on the result fd: ``{"ok": true, "result": ...}`` or
``{"ok": false, "kind", "message"}``, with the resource use. The tool's own prints go to
stdout/stderr, which the server reads and caps.

Standard library only, and no Lumina import: nothing else is mounted in the sandbox. It
imports only built-in or C modules: ``import json`` (through ``re`` and ``enum``) would
double the interpreter's start-up CPU, which every run pays (docs/adr/0018), so the result
is written by ``_encode`` below with ``_json``'s C string escaper, the one json itself uses.
"""

import _json
import marshal
import posix
import resource
import sys

_FLOAT_SPECIALS = (float("inf"), float("-inf"))


def _encode(value, out) -> None:
    """Append ``value`` as JSON to ``out``: what ``json.dumps(allow_nan=False)`` accepts."""
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_json.encode_basestring_ascii(value))
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        if value != value or value in _FLOAT_SPECIALS:
            raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
        out.append(float.__repr__(value))
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(value, dict):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise TypeError(f"keys must be str or int, not {type(key).__name__}")
            if index:
                out.append(",")
            out.append(_json.encode_basestring_ascii(str(key)))
            out.append(":")
            _encode(item, out)
        out.append("}")
    else:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _json_text(value) -> str:
    out: list = []
    _encode(value, out)
    return "".join(out)


def _set_limit(which: int, value: int) -> None:
    _soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


def _apply_limits(limits: dict) -> None:
    cpu = max(1, int(limits["cpu_seconds"]))
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
        import traceback  # only when there is one to print

        # The tool's frames only: the first one is this harness.
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
        return {"ok": False, "kind": "exception", "message": f"{type(exc).__name__}: {exc}"}


def main() -> None:
    result_fd = int(sys.argv[1])
    harness_pid = posix.getpid()
    job = marshal.loads(sys.stdin.buffer.read())  # noqa: S302 - written by the server
    posix.chdir("/tmp")  # noqa: S108 - the sandbox's own private tmpfs
    _apply_limits(job["limits"])
    outcome = _run(job)
    if posix.getpid() != harness_pid:
        posix._exit(0)  # a process the tool forked came back through here: only one result
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: S112 - a stream the tool closed; the result still goes
            continue
    outcome["usage"] = _usage()
    try:
        payload = _json_text(outcome)
    except MemoryError:
        payload = _json_text({"ok": False, "kind": "memory", "message": "MemoryError"})
    except (TypeError, ValueError, RecursionError) as exc:
        message = f"the result is not JSON: {exc}"
        payload = _json_text({"ok": False, "kind": "result", "message": message})
    data = payload.encode() + b"\n"  # the end of the one message; JSON escapes newlines
    while data:
        data = data[posix.write(result_fd, data) :]
    posix._exit(0)


if __name__ == "__main__":
    main()
