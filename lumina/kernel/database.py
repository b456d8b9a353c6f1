"""Database preconditions Lumina checks before it migrates or serves."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.db import connections


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
