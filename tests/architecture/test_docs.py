"""The documents that cite tests cite tests that exist."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CITED = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def test_every_test_cited_in_security_md_exists():
    cited = CITED.findall((ROOT / "docs" / "security.md").read_text())
    assert len(cited) > 40
    missing = [
        f"{file}::{name}"
        for file, name in cited
        if not (ROOT / file).exists() or name not in _test_names(ROOT / file)
    ]
    assert missing == []
