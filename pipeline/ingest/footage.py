"""Real demo footage: ``vtest.avi`` from Debian's ``opencv-doc`` package, cached outside the repo.

The file is PETS 2009 S2.L1 view 1 (768x576, 795 frames, 10 fps). It is fetched with
``apt-get download opencv-doc`` and only that one file is extracted, so nothing large is ever
committed. ``XREID_CACHE`` overrides the cache directory (default ``~/.cache/xreid``).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from models.errors import SourceError

VTEST_SHA256 = "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf"
VTEST_MEMBER = "./usr/share/doc/opencv-doc/examples/data/vtest.avi"
# PETS09-S2L1 ground truth shipped with the repository (tests/data/pets09-s2l1/README.md: source, licence).
# Frames 401-795 are held out: nothing is scored or tuned on them.
VTEST_GT_LAST_FRAME = 400
VTEST_GT = Path(__file__).resolve().parents[2] / "tests" / "data" / "pets09-s2l1" / "gt-0001-0400.txt"


def default_cache_dir(env: dict[str, str] | None = None) -> Path:
    """Where fetched footage and weights are cached; ``XREID_CACHE`` wins when set."""
    if env and env.get("XREID_CACHE"):
        return Path(env["XREID_CACHE"]).expanduser()
    return Path.home() / ".cache" / "xreid"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ensure_vtest(cache_dir: Path) -> Path:
    """Return the path of a verified ``vtest.avi``, downloading ``opencv-doc`` once if needed.

    Raises:
        SourceError: when the package cannot be downloaded or does not hold the expected file.
    """
    target = cache_dir / "vtest.avi"
    if target.is_file() and _sha256(target) == VTEST_SHA256:
        return target
    for tool in ("apt-get", "dpkg-deb", "tar"):
        if shutil.which(tool) is None:
            raise SourceError(f"cannot fetch vtest.avi: '{tool}' is not installed (needs a Debian-based system), "
                              f"or place the file at {target} yourself")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="xreid-opencv-doc-") as tmp:
        proc = subprocess.run(["apt-get", "download", "opencv-doc"], cwd=tmp, capture_output=True, text=True)
        debs = sorted(Path(tmp).glob("opencv-doc_*.deb"))
        if proc.returncode != 0 or not debs:
            reason = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no .deb written"]
            raise SourceError(f"cannot fetch vtest.avi: 'apt-get download opencv-doc' failed ({reason[0]}); "
                              f"run 'apt-get update' first or place the file at {target}")
        partial = target.with_suffix(".partial")
        with partial.open("wb") as out:
            deb = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(debs[0])], stdout=subprocess.PIPE)
            tar = subprocess.run(["tar", "-xO", VTEST_MEMBER], stdin=deb.stdout, stdout=out, stderr=subprocess.PIPE)
            deb.wait()
        if tar.returncode != 0 or deb.returncode != 0:
            partial.unlink(missing_ok=True)
            raise SourceError(f"opencv-doc package does not contain {VTEST_MEMBER}")
    if _sha256(partial) != VTEST_SHA256:
        partial.unlink(missing_ok=True)
        raise SourceError("extracted vtest.avi does not match its known sha256")
    partial.replace(target)
    return target
