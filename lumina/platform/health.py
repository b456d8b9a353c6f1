"""Readiness checks: the database, the pgvector extension, migrations, Redis, the sandbox."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

Check = Callable[[], dict[str, Any]]

_migrations_current = False


def check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version'), current_database()")
        version, name = cursor.fetchone()
    return {"engine": "postgresql", "version": version, "database": name}


def check_pgvector() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    if row is None:
        raise RuntimeError("the vector extension is not installed in this database")
    return {"version": row[0]}


def check_migrations() -> dict[str, Any]:
    global _migrations_current
    if _migrations_current:  # migrations only ever get applied, never unapplied, while up
        return {"pending": 0}
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        names = [f"{m.app_label}.{m.name}" for m, _ in plan]
        raise RuntimeError(f"{len(plan)} migrations not applied: {', '.join(names[:5])}")
    _migrations_current = True
    return {"pending": 0}


def check_redis() -> dict[str, Any]:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        info = client.info("server")
    finally:
        client.close()
    return {"version": info.get("redis_version")}


def check_sandbox() -> dict[str, Any]:
    """The python-tool sandbox: its mode and whether it starts.

    Not a readiness failure (only python tools need it): "unavailable" when python tools
    are refused, "weaker" when the operator chose the rlimits-only mode, else "ok".
    """
    from lumina.tools.api import sandbox_status

    status = sandbox_status()
    if not status["available"]:
        return {"status": "unavailable", "python_tools": "refused", **status}
    return {"status": "weaker" if status["weaker"] else "ok", **status}


def readiness_checks() -> dict[str, Check]:
    checks: dict[str, Check] = {
        "database": check_database,
        "pgvector": check_pgvector,
        "migrations": check_migrations,
        "sandbox": check_sandbox,
    }
    if settings.REDIS_URL:
        checks["redis"] = check_redis
    return checks


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """What anyone may see: each check's status, none of its versions, names or errors."""
    return {name: {"status": result["status"]} for name, result in results.items()}


def run_checks(checks: dict[str, Check]) -> tuple[bool, dict[str, Any]]:
    results: dict[str, Any] = {}
    healthy = True
    for name, check in checks.items():
        started = time.perf_counter()
        try:
            result = {"status": "ok", **check()}
        except Exception as exc:
            healthy = False
            result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
        result["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
        results[name] = result
    return healthy, results
