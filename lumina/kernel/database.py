"""Database helpers: the preconditions Lumina checks before it serves, and batch inserts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connection, connections


def require_pgvector(using: str = "default") -> str:
    """Return the available pgvector version, or explain clearly why Lumina cannot start."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        raise ImproperlyConfigured("Lumina needs PostgreSQL; DATABASE_URL points elsewhere.")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(installed_version, default_version) FROM pg_available_extensions"
            " WHERE name = 'vector'"
        )
        row = cursor.fetchone()
    if row is None:
        settings = connection.settings_dict
        where = f"{settings.get('HOST') or 'local socket'}/{settings.get('NAME')}"
        raise ImproperlyConfigured(
            f"The PostgreSQL server at {where} does not have the pgvector extension "
            "('vector') available. Install pgvector on that server (e.g. the "
            "postgresql-NN-pgvector package or the pgvector/pgvector image), or unset "
            "DATABASE_URL to use Lumina's embedded PostgreSQL, which includes it."
        )
    return row[0]


def insert_rows(
    table: str,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    types: Sequence[str] | None = None,
) -> None:
    """Insert ``rows`` with one statement: an INSERT for one row, COPY for more.

    COPY costs a fraction of the CPU of a multi-row INSERT (no SQL literals to build and
    escape) but one more round trip, which only pays off from the second row.

    ``types``, the columns' PostgreSQL types (``uuid``, ``text``, ``jsonb``, ``uuid[]``,
    ``vector`` …): the rows go in COPY's binary format, one row or many, which neither
    side spells out as text (a pgvector ``vector`` is its 4-byte floats, not a decimal
    literal per number). Values are then of the types' Python forms: ``Jsonb`` for jsonb,
    a sequence of floats for a vector.
    """
    names = ", ".join(columns)
    with connection.wrap_database_errors, connection.cursor() as cursor:
        # wrap_database_errors: Django translates execute()'s errors but not COPY's, and
        # callers (and the delivery's conflict check) catch Django's IntegrityError.
        if types is not None:
            if "vector" in types:
                _vector_dumpers(cursor.cursor)
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
            return
        if len(rows) == 1:
            markers = ", ".join(["%s"] * len(columns))
            sql = f"INSERT INTO {table} ({names}) VALUES ({markers})"  # noqa: S608 (constants)
            cursor.execute(sql, rows[0])
            return
        with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def _vector_dumpers(cursor: Any) -> None:
    """pgvector's dumpers on this cursor only (its connection's other statements keep
    reading vectors as text); the type's oid is looked up once per connection."""
    from pgvector.psycopg.vector import register_vector_info
    from psycopg.types import TypeInfo

    registry = cursor.connection.adapters.types
    info = registry.get("vector")
    if info is None:
        info = TypeInfo.fetch(cursor.connection, "vector")
        registry.add(info)
    register_vector_info(cursor, info)
