"""Start-up cost of ``manage.py serve``: time to the first 200 on /health/live, idle RSS.

Each run starts ``manage.py serve --port <free port>`` (DATABASE_URL unset, so the
embedded PostgreSQL is used; LUMINA_ADMIN_PASSWORD set, so no password is
generated), polls ``GET /health/live`` every 10 ms and records the time from
process start to the first 200 (``serve`` migrates and ensures the admin user
first; that is part of the real start-up). After ~3 s of idling it reads the RSS
of the web process (uvicorn runs inside the ``manage.py serve`` process), then
sends SIGINT and checks that the process exits. It prints a table per series:
every run, and the median of 5 runs.

    .venv/bin/python benchmarks/startup.py            # warm: database server already up
    .venv/bin/python benchmarks/startup.py --cold     # also cold: database stopped first

Warm runs: this script holds a handle on the embedded server (starting it if
needed), so every ``serve`` attaches to a running server. Cold runs (``--cold``
only) need the server stopped before each run; they stop, or are skipped, as soon
as another process holds the server or is connected to it: a server in use is
never stopped from here. Each row says whether the server was up at its start.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._support import pgserver  # noqa: E402 (needs the repository root on sys.path)

POLL_INTERVAL = 0.010
IDLE_SECONDS = 3.0
START_TIMEOUT = 120.0
EXIT_TIMEOUT = 30.0
MIB = 1024 * 1024


@dataclass
class Run:
    first_200_ms: float
    rss_mib: float
    exit_ms: float
    returncode: int
    database_ready_s: str  # serve's own "database ready in X s", as it printed it
    server_was_up: bool  # the embedded server was running when the run started


# --- One run ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.setdefault("LUMINA_ADMIN_PASSWORD", secrets.token_urlsafe(18))
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    return env


def live_status(port: int) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/health/live")
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def one_run(env: dict[str, str], logs: Path, name: str) -> Run:
    port = free_port()
    stdout_path, stderr_path = logs / f"{name}.out", logs / f"{name}.err"
    command = [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)]
    server_was_up = pgserver.postmaster_info() is not None
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
    try:
        while live_status(port) != 200:
            if process.poll() is not None or time.perf_counter() - started > START_TIMEOUT:
                tail = stderr_path.read_text(errors="replace").splitlines()[-12:]
                raise RuntimeError(
                    f"{name}: serve never answered 200 (exit code {process.poll()});"
                    " the end of its stderr:\n" + "\n".join(tail)
                )
            time.sleep(POLL_INTERVAL)
        first_200 = time.perf_counter() - started
        time.sleep(IDLE_SECONDS)
        rss = psutil.Process(process.pid).memory_info().rss
        interrupted = time.perf_counter()
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=EXIT_TIMEOUT)
        exit_time = time.perf_counter() - interrupted
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    ready = re.search(r"database ready in ([0-9.]+s)", stdout_path.read_text(errors="replace"))
    return Run(
        first_200 * 1000,
        rss / MIB,
        exit_time * 1000,
        returncode,
        ready[1] if ready else "?",
        server_was_up,
    )


# --- Report -------------------------------------------------------------------------------


def exit_label(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit {returncode}"


def table(title: str, runs: list[Run]) -> str:
    header = (
        "run",
        "db server up at start",
        "time to first 200 on /health/live (ms)",
        "idle RSS of the web process (MiB)",
        "serve's 'database ready'",
        "SIGINT to exit (ms)",
        "exit status",
    )
    lines = [
        (
            str(number),
            "yes" if run.server_was_up else "no",
            f"{run.first_200_ms:,.0f}",
            f"{run.rss_mib:,.1f}",
            run.database_ready_s,
            f"{run.exit_ms:,.0f}",
            exit_label(run.returncode),
        )
        for number, run in enumerate(runs, 1)
    ]
    lines.append(
        (
            "median",
            "",
            f"{statistics.median(r.first_200_ms for r in runs):,.0f}",
            f"{statistics.median(r.rss_mib for r in runs):,.1f}",
            "",
            f"{statistics.median(r.exit_ms for r in runs):,.0f}",
            "",
        )
    )
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]

    def render(cells: tuple[str, ...]) -> str:
        first, *rest = cells
        cells_out = [first.ljust(widths[0])]
        cells_out += [cell.rjust(width) for cell, width in zip(rest, widths[1:], strict=True)]
        return "  ".join(cells_out).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([title, render(header), rule, *(render(line) for line in lines)])


# --- Main ---------------------------------------------------------------------------------


def run_series(
    label: str, runs: int, env: dict[str, str], logs: Path, *, cold: bool
) -> tuple[list[Run], str | None]:
    """The runs made, and why the series stopped early (a cold series only), if it did."""
    results: list[Run] = []
    for number in range(1, runs + 1):
        if cold:
            refused = pgserver.stop_if_unused()
            if refused:
                return results, refused
        results.append(one_run(env, logs, f"{label}-{number}"))
        run = results[-1]
        print(
            f"{label} run {number}/{runs}: first 200 after {run.first_200_ms:,.0f} ms,"
            f" idle RSS {run.rss_mib:,.1f} MiB, {exit_label(run.returncode)}",
            file=sys.stderr,
            flush=True,
        )
        if cold and not pgserver.wait_until_stopped():
            print(f"{label}: the server stayed up after run {number}", file=sys.stderr)
    return results, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per series (5)")
    parser.add_argument(
        "--cold",
        action="store_true",
        help="also measure with the embedded server stopped before each run (never "
        "stops a server another process holds)",
    )
    args = parser.parse_args()

    at_start, load_at_start = pgserver.describe(), os.getloadavg()[0]
    env = serve_env()
    output = [f"embedded PostgreSQL at start: {at_start}"]
    with tempfile.TemporaryDirectory(prefix="lumina-startup-") as tmp:
        logs = Path(tmp)
        cold: list[Run] = []
        if args.cold:
            cold, refused = run_series("cold", args.runs, env, logs, cold=True)
            title = "cold: embedded server stopped before each run"
            if refused:
                title += f" ({len(cold)} of {args.runs} runs; then {refused})"
            output += ["", table(title, cold) if cold else f"cold: skipped ({refused})"]

        # Hold the server up for the warm series (unless holding it could later stop it
        # under clients of another process).
        _, held = pgserver.attach()
        try:
            warm, _ = run_series("warm", args.runs, env, logs, cold=False)
        finally:
            if held:
                pgserver.release()
    title = "warm: embedded server already running"
    if not held:
        title += " (not held by this script: it has clients but no holder)"
    output += ["", table(title, warm)]
    unclean = [run for run in cold + warm if run.returncode not in (0, -signal.SIGINT)]
    if unclean:
        output.append(f"\n{len(unclean)} run(s) did not exit cleanly on SIGINT")
    output.append(
        f"\n{os.cpu_count()} CPUs; 1-min load average {load_at_start:.1f} at start,"
        f" {os.getloadavg()[0]:.1f} at end"
    )
    print("\n".join(output))


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as exc:
        sys.exit(f"startup benchmark failed: {exc}")
