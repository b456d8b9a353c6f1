"""The MCP SDK is not loaded when a web process starts, only when MCP is first used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
import config.asgi
from django.contrib import admin
from django.urls import get_resolver
get_resolver().url_patterns
admin.site.get_urls()
from lumina.tools import runners
runner = runners.runner_for("mcp")
before = {name: name in sys.modules for name in ("mcp", "mcp_types", "httpx2")}
import lumina.tools.mcp.client
after = "mcp" in sys.modules
print(json.dumps({"before": before, "after": after}))
"""


def test_the_mcp_sdk_loads_on_first_use_not_at_start_up():
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LUMINA_")}
    environment["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["after"] is True  # the probe can see the SDK once it is loaded
    assert result["before"] == {"mcp": False, "mcp_types": False, "httpx2": False}
