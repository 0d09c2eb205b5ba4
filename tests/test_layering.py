"""DESIGN.md §2: models imports neither pipeline nor workers; pipeline never imports workers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"models": {"pipeline", "workers"}, "pipeline": {"workers"}}


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_upper_layers(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no python files"
    offenders = [f"{p.relative_to(ROOT)} imports {sorted(_imported_roots(p) & FORBIDDEN[package])}"
                 for p in files if _imported_roots(p) & FORBIDDEN[package]]
    assert not offenders, "\n".join(offenders)
