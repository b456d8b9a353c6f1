"""Schemathesis over the whole REST API: every operation, every check, as two callers.

A live server (uvicorn, the real ASGI application) answers schemathesis's generated
requests, once with a superuser's token (success paths) and once with the token of a user
who holds no role (refusals). The run is bounded (``MAX_EXAMPLES`` per operation and
phase) and deterministic (a fixed seed, no example database), and must find no server
error and no response that contradicts the document: undocumented statuses, bodies off
their schema, valid requests refused, invalid ones accepted. The totals are printed and
written to ``var/schemathesis/`` for the record.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from lumina.security.services.tokens import token_create
from lumina.security.types import Actor
from tests.providers.gateway_support import LiveAsgiServer

ROOT = Path(__file__).resolve().parents[2]
ST = Path(sys.executable).with_name("st")
REPORTS = ROOT / "var" / "schemathesis"
CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = int(os.environ.get("LUMINA_SCHEMATHESIS_EXAMPLES", "10"))
ALL_PHASES = "examples,coverage,fuzzing,stateful"

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


LOOPBACK = ("127.", "::1", "localhost")


def _loopback(host: object) -> bool:
    text = host.decode() if isinstance(host, bytes) else str(host)
    return text.startswith(LOOPBACK) or text in ("", "None")


@pytest.fixture
def loopback_only(monkeypatch):
    """Nothing Lumina is asked to call may leave the machine.

    As a superuser, schemathesis registers AI providers and identity providers at
    addresses it makes up (``https://0.com``) and then calls them; here every look-up or
    connection to anything but loopback fails as an unreachable network would.
    """
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if not _loopback(host):
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: outside the test machine")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            raise ConnectionRefusedError(f"{address[0]}: outside the test machine")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def server(settings, loopback_only):
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
    live = LiveAsgiServer()
    live.start()
    try:
        yield live
    finally:
        live.stop()


def _token(user) -> str:
    return token_create(user_id=user.pk, actor=Actor.system("tests"), scopes=["*"]).secret


def _schemathesis(
    server, token: str, caller: str, max_examples: int, phases: str
) -> subprocess.Popen:
    """Start one run; both callers' runs go side by side (the server mostly waits)."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    report = REPORTS / f"{caller}.ndjson"
    command = [
        str(ST), "--config-file", str(CONFIG), "run", f"{server.url}/api/schema/",
        "--url", server.url,
        "--checks", "all",
        "--max-examples", str(max_examples),
        "--generation-deterministic",
        "--phases", phases,
        "--workers", "1",
        "--request-timeout", "30",
        "--header", f"Authorization: Bearer {token}",
        "--report", "ndjson",
        "--report-ndjson-path", str(report),
        "--no-color",
        # For narrowing a run while investigating, e.g. "--include-path-regex encryption".
        *os.environ.get("LUMINA_SCHEMATHESIS_ARGS", "").split(),
    ]  # fmt: skip
    # Schemathesis runs none of Lumina's code: coverage (which follows subprocesses) would
    # only slow its test generation down.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _finish(run: subprocess.Popen, caller: str) -> dict:
    output, _ = run.communicate(timeout=900)
    (REPORTS / f"{caller}.txt").write_text(output)
    totals = _totals(REPORTS / f"{caller}.ndjson")
    return {"returncode": run.returncode, "output": output, "totals": totals}


def _totals(report: Path) -> dict:
    """Cases, operations and failures by check, from schemathesis's event stream."""
    operations: set[str] = set()
    cases = 0
    failures: Counter[str] = Counter()
    checks: Counter[str] = Counter()
    for line in report.read_text().splitlines():
        event = json.loads(line)
        finished = event.get("ScenarioFinished")
        if not finished:
            continue
        recorder = finished.get("recorder") or {}
        label = recorder.get("label") or ""
        if label.split(" ", 1)[0] in {"GET", "POST", "PUT", "PATCH", "DELETE"}:
            operations.add(label)
        cases += len(recorder.get("cases") or {})
        for per_case in (recorder.get("checks") or {}).values():
            for check in per_case:
                checks[check["name"]] += 1
                if check["status"].lower() == "failure":
                    failures[check["name"]] += 1
    return {"operations": len(operations), "cases": cases, "checks": dict(checks),
            "failures": dict(failures)}  # fmt: skip


def test_every_operation_conforms_for_a_superuser_and_a_user_without_permissions(
    server, django_user_model
):
    superuser = django_user_model.objects.create_superuser("st-root@example.com", "a long pass 9")
    nobody = django_user_model.objects.create_user("st-nobody@example.com", "a long pass 9")
    root_token = _token(superuser)
    # One schema request first: drf-spectacular loads its extension classes on first use,
    # and two first requests at once race in that loading (an occasional 500).
    warm = urllib.request.Request(
        f"{server.url}/api/schema/", headers={"Authorization": f"Bearer {root_token}"}
    )
    with urllib.request.urlopen(warm, timeout=60) as response:
        assert response.status == 200
    # Refusals are uniform: the caller without permissions needs fewer examples and no
    # coverage phase (boundary values of every field, which the superuser's run sends
    # through the same validation; for this caller it cost five minutes of CPU).
    started = {
        "superuser": _schemathesis(server, root_token, "superuser", MAX_EXAMPLES, ALL_PHASES),
        "no-permission": _schemathesis(
            server,
            _token(nobody),
            "no-permission",
            max(1, MAX_EXAMPLES // 2),
            "examples,fuzzing,stateful",
        ),
    }
    runs = {caller: _finish(run, caller) for caller, run in started.items()}
    summary = {caller: run["totals"] for caller, run in runs.items()}
    (REPORTS / "totals.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    print("\nschemathesis totals:", json.dumps(summary, indent=2, sort_keys=True))
    for caller, run in runs.items():
        assert run["totals"]["operations"] > 0, run["output"]  # it really ran …
        assert run["totals"]["cases"] > 0, run["output"]
        assert run["totals"]["failures"] == {}, f"{caller}:\n{run['output'][-20000:]}"
        assert run["returncode"] == 0, f"{caller}:\n{run['output'][-20000:]}"
