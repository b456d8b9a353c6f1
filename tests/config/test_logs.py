"""Log format: readable lines for a developer at a terminal, JSON for everything else."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.logs import choose_json

ROOT = Path(__file__).resolve().parents[2]
LOG_ONE_LINE = (
    "import django, logging; django.setup(); "
    "logging.getLogger('lumina.probe').warning('hello %s', 'there')"
)


@pytest.fixture
def terminal() -> Iterator[io.TextIOWrapper]:
    """A real pseudo-terminal's writing end, as a process's stderr would be."""
    leader, follower = os.openpty()
    stream = open(follower, "w")  # noqa: SIM115 (closed below)
    yield stream
    stream.close()
    os.close(leader)


def test_a_terminal_in_development_gets_console_lines(terminal):
    assert terminal.isatty()
    assert choose_json(None, production=False, stream=terminal) is False


def test_a_pipe_or_file_gets_json(tmp_path):
    assert choose_json(None, production=False, stream=io.StringIO()) is True
    with open(tmp_path / "log", "w") as file:
        assert choose_json(None, production=False, stream=file) is True


def test_production_gets_json_even_at_a_terminal(terminal):
    assert choose_json(None, production=True, stream=terminal) is True


@pytest.mark.parametrize("production", [False, True])
def test_lumina_log_format_overrides_the_choice(terminal, production):
    assert choose_json("json", production=production, stream=terminal) is True
    assert choose_json("console", production=production, stream=io.StringIO()) is False


def _log_line(tmp_path: Path, *, tty: bool, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LUMINA_", "DATABASE"))}
    clean.update(DJANGO_SETTINGS_MODULE="config.settings", LUMINA_DATA_DIR=str(tmp_path), **env)
    if not tty:
        result = subprocess.run(
            [sys.executable, "-c", LOG_ONE_LINE],
            cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return result.stderr
    leader, follower = os.openpty()
    try:
        subprocess.run(
            [sys.executable, "-c", LOG_ONE_LINE],
            cwd=ROOT, env=clean, stderr=follower, stdout=subprocess.DEVNULL, timeout=60,
            check=True,
        )  # fmt: skip
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the terminal's last writer has gone
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode()
    finally:
        os.close(leader)


def test_settings_log_json_into_a_pipe(tmp_path):
    line = _log_line(tmp_path, tty=False).strip()
    record = json.loads(line)
    assert record["event"] == "hello there"
    assert record["level"] == "warning"


def test_settings_log_console_lines_into_a_terminal(tmp_path):
    text = _log_line(tmp_path, tty=True)
    assert "hello there" in text  # the line is there to be seen …
    assert not text.strip().startswith("{")  # … and it is not JSON
    assert "[warning" in text.replace(" ", "")


def test_settings_log_json_into_a_terminal_when_asked(tmp_path):
    text = _log_line(tmp_path, tty=True, LUMINA_LOG_FORMAT="json")
    assert json.loads(text.strip())["event"] == "hello there"
