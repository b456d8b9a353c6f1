"""The shared embedded PostgreSQL server, as the benchmarks see it and use it.

The server is shared (dev server, test runs, other benchmarks): it stays up while
some process holds a handle on it (``config.embedded_postgres.ensure_server``) and
stops when the last handle is released. So the benchmarks inspect it without taking
a handle, take one only when releasing it later cannot stop a server others use,
and stop it only when no other process holds it or is connected to it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
PGDATA = Path(os.environ.get("LUMINA_DATA_DIR") or ROOT / "var") / "pgdata"


def postmaster_info() -> tuple[int, str] | None:
    """Pid and socket directory of the running server (postmaster.pid may be stale)."""
    try:
        lines = (PGDATA / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
        running = psutil.Process(pid).name() == "postgres"
    except (FileNotFoundError, IndexError, ValueError, psutil.Error):
        return None
    return (pid, lines[4]) if running else None


def other_holders() -> list[int]:
    """Live processes other than this one holding a handle on the server."""
    try:
        pids = json.loads((PGDATA / ".handle_pids.json").read_text() or "[]")
    except FileNotFoundError:
        return []
    return [pid for pid in pids if pid != os.getpid() and psutil.pid_exists(pid)]


def client_connections() -> int:
    """Client connections to the running server, counted without taking a handle."""
    import psycopg

    info = postmaster_info()
    if info is None:
        return 0
    with psycopg.connect(host=info[1], dbname="postgres", user="postgres") as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchone()
    return row[0]


def in_use_by_others() -> str | None:
    """Why the running server must not be stopped from here, or None if nobody uses it."""
    if postmaster_info() is None:
        return None
    holders = other_holders()
    if holders:
        return f"the embedded server is held by pid {', '.join(map(str, holders))}"
    clients = client_connections()
    if clients:
        return f"the embedded server has {clients} client connection(s) and no holder"
    return None


def describe() -> str:
    info = postmaster_info()
    if info is None:
        stale = " (stale postmaster.pid)" if (PGDATA / "postmaster.pid").exists() else ""
        return f"not running{stale}"
    holders = ", ".join(map(str, other_holders())) or "no process"
    return (
        f"running (pid {info[0]}; held by {holders}; {client_connections()} client connection(s))"
    )


def attach() -> tuple[str, bool]:
    """Make sure the server runs; return its socket directory and whether we hold it.

    No handle is taken on a server that has clients but no holder: releasing it
    would stop the server under them.
    """
    from config.embedded_postgres import ensure_server

    info = postmaster_info()
    if info is not None and not other_holders() and client_connections():
        return info[1], False
    return ensure_server(PGDATA), True


def release() -> None:
    from config.embedded_postgres import stop_server

    stop_server(PGDATA)


def wait_until_stopped(timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while postmaster_info() is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def stop_if_unused() -> str | None:
    """Stop the running server if nobody else holds or uses it; else return why not."""
    if postmaster_info() is None:
        return None
    refused = in_use_by_others()
    if refused:
        return refused
    from config.embedded_postgres import ensure_server, stop_server

    ensure_server(PGDATA)  # attach, so that releasing the last handle stops the server
    stop_server(PGDATA)
    return None if wait_until_stopped() else "the embedded server did not stop"


def database_url(socket_dir: str, database: str) -> str:
    """A DATABASE_URL reaching ``database`` on the embedded server's unix socket."""
    from urllib.parse import quote

    return f"postgresql://postgres@{quote(socket_dir, safe='')}/{database}"


def recreate_database(socket_dir: str, database: str, *, create: bool = True) -> None:
    """Drop ``database`` (closing its connections) and, unless told not to, create it anew."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(host=socket_dir, dbname="postgres", user="postgres") as conn:
        conn.autocommit = True
        name = sql.Identifier(database)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        if create:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
