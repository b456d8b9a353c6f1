"""CI never passes by skipping: with LUMINA_REQUIRE_SERVICES set, a skip is a failure.

Only tests marked ``optional_extra`` may still skip; skip reasons are always printed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = "tests/architecture/service_probe.py"


def _run_probe(**env: str) -> tuple[dict[str, str], str]:
    clean = {k: v for k, v in os.environ.items() if k != "LUMINA_REQUIRE_SERVICES"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", PROBE, "-v", "--no-cov"],
        cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    outcomes = {}
    for line in result.stdout.splitlines():
        found = re.search(r"::(test_\w+) (PASSED|FAILED|SKIPPED|ERROR)", line)
        if found:
            outcomes[found.group(1)] = found.group(2)
    return outcomes, result.stdout


def test_without_the_switch_missing_services_skip_with_their_reason():
    outcomes, output = _run_probe()
    assert list(outcomes.values()) == ["SKIPPED"] * 3, output
    assert "a service on port 1 is not reachable on 127.0.0.1:1" in output  # -rs prints it


def test_with_the_switch_every_skip_but_optional_extras_fails():
    outcomes, output = _run_probe(LUMINA_REQUIRE_SERVICES="1")
    assert outcomes.get("test_needs_a_service_that_is_not_there") == "FAILED", output
    assert outcomes.get("test_skips_without_the_helper") == "FAILED", output
    assert outcomes.get("test_needs_an_optional_extra") == "SKIPPED", output
    assert "LUMINA_REQUIRE_SERVICES" in output


def test_ci_sets_the_switch():
    script = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^export LUMINA_REQUIRE_SERVICES=1$", script, re.MULTILINE)
    assert script.index("LUMINA_REQUIRE_SERVICES") < script.index("make test")
