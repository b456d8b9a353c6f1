"""CPU used by this process and every process it starts, read from a cgroup of its own."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path


class CpuMeter:
    """CPU of this process and everything it starts, from a cgroup of its own.

    bwrap does not wait for the sandbox's processes itself (its PID-1 does, and reports
    through a pipe), so getrusage(RUSAGE_CHILDREN) would miss them: the cgroup counts every
    descendant. Falls back to RUSAGE_CHILDREN (marked "~") where no cgroup can be made.
    """

    ROOTS = ("/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup")

    def __init__(self) -> None:
        self.path: Path | None = None
        self.parent: Path | None = None
        for root in map(Path, self.ROOTS):
            probe = root / ("cpuacct.usage" if root.name == "cpuacct" else "cpu.stat")
            if not probe.exists():
                continue
            try:
                path = root / f"lumina-bench-{os.getpid()}"
                path.mkdir()
                (path / "cgroup.procs").write_text(str(os.getpid()))
            except OSError:
                continue
            self.path, self.parent = path, root
            break

    @property
    def exact(self) -> bool:
        return self.path is not None

    def ms(self) -> float:
        if self.path is None:
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            return (usage.ru_utime + usage.ru_stime) * 1000
        if (self.path / "cpuacct.usage").exists():
            return int((self.path / "cpuacct.usage").read_text()) / 1e6
        stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
        return int(stat["usage_usec"]) / 1000

    def close(self) -> None:
        if self.path is None:
            return
        (self.parent / "cgroup.procs").write_text(str(os.getpid()))
        for _ in range(100):  # the last sandboxes' processes may still be leaving
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.05)
