"""The import contracts bite: each kind of forbidden import makes lint-imports fail.

Each case copies the real tree, adds one violation, and runs lint-imports on the copy.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _copy_tree(target: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "migrations")
    for package in ("lumina", "config"):
        shutil.copytree(ROOT / package, target / package, ignore=ignore)
    shutil.copy(ROOT / ".importlinter", target / ".importlinter")
    return target


def _lint(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _append(tree: Path, relative: str, line: str) -> None:
    path = tree / relative
    # A file beside a package of the same name is never imported, so a violation written
    # there would break nothing: every violation goes into a module Python really loads.
    assert not path.with_suffix("").is_dir(), f"{relative} is shadowed by a package"
    assert (path.parent / "__init__.py").exists(), f"{relative} is not inside a package"
    if not path.exists():
        path.write_text('"""Module added by the test."""\n')
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_real_tree_keeps_every_contract(tmp_path):
    result = _lint(_copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


VIOLATIONS = [
    pytest.param(
        {
            "lumina/providers/services/registry.py": (
                "from lumina.security.models import User  # noqa"
            )
        },
        "Contexts talk only via api.py / events.py",
        "lumina.providers.services.registry -> lumina.security.models",
        id="context-reaches-into-another-contexts-models",
    ),
    pytest.param(
        {"lumina/kernel/bus.py": "import lumina.memory  # noqa"},
        "config > platform > ui > domain contexts > kernel",
        "lumina.kernel.bus -> lumina.memory",
        id="kernel-imports-a-context",
    ),
    pytest.param(
        {"lumina/security/services/rbac.py": "import rest_framework  # noqa"},
        "Domain code must not import DRF / Channels",
        "lumina.security.services.rbac -> rest_framework (l.",
        id="services-import-drf",
    ),
    pytest.param(
        {"lumina/providers/events/registry.py": "import django.db  # noqa"},
        "events.py modules are plain Python",
        "lumina.providers.events.registry -> django (l.",
        id="events-import-django",
    ),
    pytest.param(
        {"lumina/platform/health.py": "import config.settings  # noqa"},
        "lumina never imports config",
        "lumina.platform.health -> config.settings",
        id="lumina-imports-config",
    ),
    pytest.param(
        {"lumina/security/models/rbac.py": "from lumina.security.services import rbac  # noqa"},
        "Per-context internal layering",
        "lumina.security.models.rbac -> lumina.security.services.rbac",
        id="models-import-services",
    ),
    pytest.param(
        {
            "lumina/providers/api.py": "import lumina.memory.api  # noqa",
            "lumina/memory/api.py": "import lumina.providers.api  # noqa",
        },
        "No cycles between contexts",
        ".providers -> .memory",
        id="cycle-between-contexts-through-apis",
    ),
]


@pytest.mark.parametrize(("edits", "contract", "evidence"), VIOLATIONS)
def test_a_forbidden_import_breaks_its_contract(tmp_path, edits, contract, evidence):
    tree = _copy_tree(tmp_path)
    for relative, line in edits.items():
        _append(tree, relative, line)
    result = _lint(tree)
    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if " BROKEN" in line]
    assert any(line.startswith(contract) for line in broken), result.stdout
    # The report names the import that was added: that import, not another, broke it.
    assert evidence in result.stdout, result.stdout
