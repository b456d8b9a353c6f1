"""DATABASE_URL pointing at a PostgreSQL without pgvector fails start-up clearly."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_service, service_unavailable

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_serve_refuses_a_postgresql_without_pgvector(tmp_path):
    # This machine's system PostgreSQL (port 5432) has no pgvector; the embedded one does.
    require_service("127.0.0.1", 5432, "a PostgreSQL without pgvector")
    probe = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAc",
         "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if probe.returncode != 0 or probe.stdout.strip() != "0":
        service_unavailable("the PostgreSQL on 127.0.0.1:5432 is unusable here or has pgvector")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("LUMINA_", "DATABASE"))}
    env.update(
        DATABASE_URL="postgresql://postgres@127.0.0.1:5432/postgres",
        LUMINA_DATA_DIR=str(tmp_path),
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "serve", "--prepare-only"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "does not have the pgvector extension ('vector') available" in result.stderr
    assert "127.0.0.1/postgres" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("CommandError: Cannot start: ")
