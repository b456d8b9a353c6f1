"""The seccomp filter every sandbox runs under, built with pyseccomp and loaded by bwrap.

A deny list on top of bwrap's own (bwrap already refuses TIOCSTI and, with
``--disable-userns``, new user namespaces): calls a tool never needs and that widen the
kernel's attack surface answer EPERM; without network, every socket but AF_UNIX answers
EACCES, so a tool sees a plain ``PermissionError`` rather than a hang. Calls for another
architecture (i386/x32 entry points) kill the process: libseccomp's default for a foreign
architecture.
"""

from __future__ import annotations

import errno
import functools
import socket
import tempfile

# Kernel interfaces a python tool has no business with: namespaces and mounts, tracing and
# other processes' memory, kernel modules and keys, BPF/perf, io_uring, clocks, reboot.
DENIED_CALLS = (
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "name_to_handle_at",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "syslog",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "vhangup",
)


@functools.cache
def filter_program(*, network: bool) -> bytes:
    """The BPF program for bwrap ``--seccomp`` (raw ``struct sock_filter`` array)."""
    import pyseccomp as seccomp

    rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in DENIED_CALLS:
        try:
            rules.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except (RuntimeError, ValueError, OSError):
            continue  # a call this kernel/libseccomp does not know cannot be made either
    if not network:
        # Only AF_UNIX (a socketpair, a local pipe): no inet, netlink, packet or vsock.
        local = seccomp.Arg(0, seccomp.NE, socket.AF_UNIX)
        rules.add_rule(seccomp.ERRNO(errno.EACCES), "socket", local)
    with tempfile.TemporaryFile() as handle:
        rules.export_bpf(handle)
        handle.seek(0)
        return handle.read()
