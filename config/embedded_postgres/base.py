"""PostgreSQL backend that connects to the embedded server, starting it on demand."""

from __future__ import annotations

import contextlib
from pathlib import Path

import psycopg
from django.db.backends.postgresql import base as postgresql
from psycopg import sql

from config.embedded_postgres import ensure_server

_created_databases: set[tuple[str, str]] = set()


class DatabaseWrapper(postgresql.DatabaseWrapper):
    def get_connection_params(self) -> dict:
        pgdata = Path(self.settings_dict["OPTIONS"]["pgdata"])
        socket_dir = ensure_server(pgdata)
        options = {k: v for k, v in self.settings_dict["OPTIONS"].items() if k != "pgdata"}
        settings_dict = {**self.settings_dict, "HOST": socket_dir, "OPTIONS": options}
        original, self.settings_dict = self.settings_dict, settings_dict
        try:
            params = super().get_connection_params()
        finally:
            self.settings_dict = original
        _ensure_database(socket_dir, params.get("dbname"), params.get("user") or "postgres")
        return params


def _ensure_database(socket_dir: str, name: str | None, user: str) -> None:
    """The embedded cluster only has ``postgres``; create Lumina's database on first use."""
    if not name or name == "postgres" or (socket_dir, name) in _created_databases:
        return
    # Test databases are created and dropped by Django's test runner itself.
    if name.startswith("test_"):
        return
    with psycopg.connect(host=socket_dir, dbname="postgres", user=user, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            # Two processes starting at once on a new data directory both get here.
            lost_race = (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation)
            with contextlib.suppress(*lost_race):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    _created_databases.add((socket_dir, name))
