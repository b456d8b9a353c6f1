"""The Vega-Lite schema: shipped with the project, read once, never over the network."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lumina.ui import vegalite


def test_the_schema_is_altairs_file_and_its_version_is_reported():
    path = vegalite.schema_path()
    assert path.is_file()
    assert "site-packages" in str(path) or "dist-packages" in str(path)
    assert path.name == "vega-lite-schema.json"
    assert vegalite.schema()["$ref"] == "#/definitions/TopLevelSpec"
    assert vegalite.schema_version().startswith("6.")


def test_the_validator_is_built_once_and_verdicts_are_remembered():
    assert vegalite.validator() is vegalite.validator()
    spec = {"data": {"values": [{"a": 1}]}, "mark": "point", "title": "remembered once"}
    vegalite._verdict.cache_clear()
    vegalite.spec_check(spec)
    vegalite.spec_check(dict(reversed(list(spec.items()))))  # same spec, keys in another order
    info = vegalite._verdict.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    bad = {**spec, "mark": "dot"}
    for _ in range(2):  # a refusal is remembered too, and raised each time
        with pytest.raises(vegalite.SpecError) as raised:
            vegalite.spec_check(bad)
        assert list(raised.value.fields) == ["spec.mark"]


def test_checking_a_spec_imports_no_altair_and_opens_no_connection():
    # A fresh interpreter: altair must stay unimported, and any socket use fails loudly.
    code = """
import socket, sys
def refuse(*args, **kwargs):
    raise AssertionError("network use")
socket.socket.connect = refuse
socket.getaddrinfo = refuse
from lumina.ui import vegalite
vegalite.spec_check({"data": {"values": []}, "mark": "bar",
                     "$schema": "https://vega.github.io/schema/vega-lite/v6.json"})
assert "altair" not in sys.modules, "altair was imported"
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_large_specs_are_checked_each_time_and_not_remembered():
    rows = [{"day": f"2026-05-{1 + i % 28:02d}", "cost": i} for i in range(2_000)]
    spec = {"data": {"values": rows}, "mark": "bar"}
    vegalite._verdict.cache_clear()
    vegalite.spec_check(spec)
    assert vegalite._verdict.cache_info().currsize == 0
    with pytest.raises(vegalite.SpecError):
        vegalite.spec_check({**spec, "mark": "dot"})
    assert vegalite._verdict.cache_info().currsize == 0


def test_the_console_draws_with_the_vega_lite_major_the_server_checks_against():
    import json
    from pathlib import Path

    lock = Path(__file__).resolve().parents[2] / "frontend" / "package-lock.json"
    drawn = json.loads(lock.read_text())["packages"]["node_modules/vega-lite"]["version"]
    assert drawn.split(".")[0] == vegalite.schema_version().split(".")[0]
