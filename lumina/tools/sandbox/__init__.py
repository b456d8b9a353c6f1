"""The sandbox for python tools: bubblewrap namespaces, seccomp, rlimits, a warm pool.

``run_python(source, arguments, limits) -> SandboxResult`` is the whole interface; the
layers and their measured cost are in docs/adr/0018-sandbox-layers.md.
"""

from lumina.tools.sandbox.runner import (
    SandboxResult,
    SandboxUnavailableError,
    close_pools,
    run_python,
    sandbox_start,
    sandbox_status,
)

__all__ = [
    "SandboxResult",
    "SandboxUnavailableError",
    "close_pools",
    "run_python",
    "sandbox_start",
    "sandbox_status",
]
