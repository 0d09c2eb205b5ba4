"""Where the repository and the data shipped with the tests are, whatever folder a test lives in."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTS_DIR = REPO_ROOT / "tests"
DATA_DIR = TESTS_DIR / "data"
# PETS09-S2L1 ground truth for frames 1-400, shipped with the tests (source and licence in its README).
PETS_GT = DATA_DIR / "pets09-s2l1" / "gt-0001-0400.txt"
