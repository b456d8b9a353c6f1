"""What a web process loads at start-up: libraries only some deployments use wait for use.

Each check runs in a fresh interpreter that loads what the server loads before its first
request (``config.asgi``, the URLconf, the admin's URLs), then looks at ``sys.modules``.
"""

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
loaded = lambda *names: {name: name in sys.modules for name in names}
before = loaded(
    "authlib", "joserfc", "celery", "redis", "sklearn", "scipy", "mcp", "numpy", "jsonschema",
    "referencing", "pydantic", "tenacity", "drf_spectacular.views",
)
from lumina.security.http import oidc
oidc.services.oidc_login_start  # the first use of the OIDC services
after = loaded("authlib", "joserfc")
from lumina.memory.services import topic_clustering
topic_clustering.cluster(["one", "two"], [[1.0, 0.0], [0.0, 1.0]])  # topic extraction
after.update(loaded("sklearn", "scipy", "numpy"))
from lumina.tools.schemas import problems
problems({"type": "object"}, {}, prefix="arguments")  # the first tool argument check
after.update(loaded("jsonschema", "referencing"))
print(json.dumps({"before": before, "after": after}))
"""


def _probe(**env: str) -> dict:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LUMINA_", "CELERY_")) and key not in ("REDIS_URL",)
    }
    environment.update(PYTHONPATH=str(ROOT), **env)
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_oidc_celery_redis_scikit_learn_mcp_numpy_jsonschema_and_more_load_only_when_used():
    result = _probe(LUMINA_EVENT_TRANSPORT="inprocess")

    assert result["before"] == {
        "authlib": False,
        "joserfc": False,
        "celery": False,
        "redis": False,
        "sklearn": False,
        "scipy": False,
        "mcp": False,
        "numpy": False,
        "jsonschema": False,
        "referencing": False,
        "pydantic": False,  # the environment is read without it (ADR 0030)
        "tenacity": False,  # loaded with the first retry
        "drf_spectacular.views": False,  # loaded with the first request for the schema
    }
    # The first use does load them: the check above is not blind.
    assert result["after"] == {
        "authlib": True,
        "joserfc": True,
        "sklearn": True,
        "scipy": True,
        "numpy": True,
        "jsonschema": True,
        "referencing": True,
    }
