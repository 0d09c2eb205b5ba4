"""The import direction of the code follows the data flow, so the tree can be read as the pipeline.

``models`` imports neither ``pipeline`` nor ``workers``; ``pipeline`` never imports ``workers``. Inside
``pipeline/`` every stage package has a rank, and a package imports only packages of lower rank:

    config < runtime < bus < ingest < detection < tracking < camera < store < events < reid < matcher < api
    < replay < adapt

``store`` ranks below the stages that write it (re-ID keeps crops, the matcher writes tracks and links)
and below the API that reads it, and it knows none of them: the PostgreSQL backend plugs in there alone.
``events`` (the live-event contract and its publishers) sits right above it: the matcher announces
through it and the API streams from it, and it knows neither.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"models": {"pipeline", "workers"}, "pipeline": {"workers"}}
STAGES = ["config", "runtime", "bus", "ingest", "detection", "tracking", "camera", "store", "events", "reid",
          "matcher", "api", "replay", "adapt"]


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; write the absolute module so moves stay visible"
            if node.module:
                modules.add(node.module)
    return modules


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_upper_layers(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no python files"
    offenders = []
    for p in files:
        roots = {m.split(".")[0] for m in _imported_modules(p)}
        if roots & FORBIDDEN[package]:
            offenders.append(f"{p.relative_to(ROOT)} imports {sorted(roots & FORBIDDEN[package])}")
    assert not offenders, "\n".join(offenders)


def test_pipeline_is_only_stage_packages():
    loose = sorted(p.name for p in (ROOT / "pipeline").glob("*.py") if p.name != "__init__.py")
    packages = sorted(p.name for p in (ROOT / "pipeline").iterdir()
                      if p.is_dir() and (p / "__init__.py").exists())
    assert not loose, f"modules outside a stage package: {loose}"
    assert packages == sorted(STAGES), f"stage packages {packages} differ from the ranked list {sorted(STAGES)}"


@pytest.mark.parametrize("stage", STAGES)
def test_stage_imports_only_lower_ranks(stage):
    rank = STAGES.index(stage)
    offenders = []
    for p in sorted((ROOT / "pipeline" / stage).rglob("*.py")):
        for module in _imported_modules(p):
            parts = module.split(".")
            if parts[0] != "pipeline" or len(parts) < 2 or parts[1] == stage:
                continue
            if parts[1] not in STAGES or STAGES.index(parts[1]) > rank:
                offenders.append(f"{p.relative_to(ROOT)} imports {module}")
    assert not offenders, "\n".join(offenders)


def test_layering_catches_an_upward_import(tmp_path):
    """The rule is not vacuous: an import from a higher rank is what the check reports."""
    bad = tmp_path / "bad.py"
    bad.write_text("from pipeline.matcher.gallery import Gallery\n", encoding="utf-8")
    assert "pipeline.matcher.gallery" in _imported_modules(bad)
    assert STAGES.index("matcher") > STAGES.index("store")
