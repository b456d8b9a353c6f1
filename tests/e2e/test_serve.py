"""``make run``'s command end to end: a fresh data directory to a working server and back."""

import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
METRICS_TOKEN = "e2e-metrics-token-0123456789"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


@pytest.fixture
def server():
    # Not under pytest's basetemp: another pytest session on the machine resets that tree
    # to 0700, and PostgreSQL runs as its own user, which must reach the data directory.
    with tempfile.TemporaryDirectory(prefix="lumina-serve-") as directory:
        yield from _serve(Path(directory))


def _serve(tmp_path: Path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LUMINA_", "DATABASE"))}
    env.update(
        LUMINA_DATA_DIR=str(tmp_path / "var"),
        LUMINA_PORT=str(port),
        LUMINA_METRICS_TOKEN=METRICS_TOKEN,
    )
    log = (tmp_path / "serve.log").open("w+")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{base}/health/live")
        log.seek(0)
        yield process, base, log.read(), tmp_path / "var" / "pgdata"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


@pytest.mark.slow
def test_serve_from_an_empty_data_directory_then_stop_cleanly(server):
    process, base, output, pgdata = server

    with urllib.request.urlopen(f"{base}/health/ready") as response:
        ready = json.load(response)
    assert ready["status"] == "ok"
    assert ready["checks"]["database"] == {"status": "ok"}  # no versions for anyone
    operator = urllib.request.Request(
        f"{base}/health/ready", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    with urllib.request.urlopen(operator) as response:
        ready = json.load(response)
    assert ready["checks"]["database"]["engine"] == "postgresql"
    assert ready["checks"]["pgvector"]["version"]

    with urllib.request.urlopen(f"{base}/api/docs/") as response:
        assert response.status == 200
        assert "swagger-ui" in response.read().decode()

    match = re.search(r"Admin login\s+(\S+) / (\S+)", output)
    assert match, output
    email, password = match.groups()
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{base}/admin/login/")
    csrf = next(c.value for c in jar if c.name == "csrftoken")
    form = urllib.parse.urlencode(
        {"username": email, "password": password, "csrfmiddlewaretoken": csrf, "next": "/admin/"}
    ).encode()
    request = urllib.request.Request(f"{base}/admin/login/?next=/admin/", data=form)
    request.add_header("Referer", f"{base}/admin/login/")
    with opener.open(request) as response:
        page = response.read().decode()
    assert response.url == f"{base}/admin/"
    assert "Site administration" in page

    postmaster = psutil.Process(int((pgdata / "postmaster.pid").read_text().split()[0]))
    assert postmaster.is_running()

    process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert process.wait(timeout=30) in (0, -signal.SIGINT, 130)
    postmaster.wait(timeout=30)
    assert not postmaster.is_running()
    assert not (pgdata / "postmaster.pid").exists()
