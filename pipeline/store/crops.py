"""Person crops kept per track beside the store, so the site can later adapt the re-ID model to itself.

``xreid adapt`` trains on these crops and ``xreid reembed`` re-embeds the store from them: embeddings
alone cannot be recomputed under another model, raw pixels can. The matcher (the store's single
writer) keeps the thumbnail every ``Embedding`` carries (the clip's best-scored crop); in embedded mode
(``replay``, ``demo``) the re-ID stage keeps up to ``PER_CLIP`` of each clip's crops instead, spread
over the clip, as they arrive (JPEG bytes as cut, nothing re-encoded). At most ``store.keep_crops``
per track, the earliest clips first.

Layout, one place for retention and erasure to purge (``drop_tracks``, ``drop_older_than``)::

    <store dir>/<store stem>.crops/<track_uid>/<segment:06d>-<index:02d>_<t_start_ms>_<t_end_ms>.jpg

A PostgreSQL store has no folder of its own: its crops go to ``store.crops_dir`` when set, else
``xreid-out/<database>.crops`` (the replay: ``<--out>/<database>.crops``), on the machine of the process
that writes them (the matcher in a deployment: give it a volume, docs/store.md).

``t_start``/``t_end`` are the clip's; ``index`` the crop's place in the clip (99: the matcher's thumbnail).

Files are written under a temporary name and renamed, so a crash never leaves half a JPEG; writing the
same clip twice (a redelivery) rewrites the same file.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.store.base import is_postgres

log = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_NAME = re.compile(r"^(\d{6})-(\d{2})_(\d+)_(\d+)\.jpg$")
PER_CLIP = 4           # crops the re-ID stage keeps of each clip
THUMBNAIL_INDEX = 99
_JPEG_SOI = b"\xff\xd8"


def crops_dir(store_path: str | Path) -> Path:
    """The crops folder of the store at ``store_path`` (``xreid-out/xreid.sqlite`` -> ``xreid-out/xreid.crops``)."""
    p = Path(store_path)
    return p.with_name(p.stem + ".crops")


def crops_root(location: str | Path, configured: str | None = None, out_dir: str | Path | None = None) -> Path:
    """Where the crops of the store at ``location`` go (see the module docstring).

    Args:
        configured: ``store.crops_dir`` (wins when set).
        out_dir: the run's output folder (the replay's ``--out``), for a PostgreSQL store.
    """
    if configured:
        return Path(configured)
    if is_postgres(location):
        database = urlsplit(str(location)).path.strip("/") or "xreid"
        return Path(out_dir or "xreid-out") / f"{database}.crops"
    return crops_dir(location)


def _track_dir(root: Path, track_uid: str) -> Path:
    return root / _SAFE.sub("_", track_uid)


@dataclass(frozen=True)
class KeptCrop:
    """One kept crop: the clip it came from and its JPEG file."""

    segment: int
    index: int
    t_start: float
    t_end: float
    path: Path


class CropKeeper:
    """Writes and reads the crops of one store.

    Args:
        root: the crops folder (``crops_dir(store_path)``).
        per_track: the most crops kept per track (the first clips' thumbnails).
    """

    def __init__(self, root: str | Path, per_track: int = 16) -> None:
        if per_track < 1:
            raise ValueError(f"per_track must be >= 1, got {per_track}")
        self.root = Path(root)
        self.per_track = per_track
        self._erased: set[str] = set()   # tracks erased while this process runs: their late clips are not kept

    @classmethod
    def for_store(cls, location: str | Path, per_track: int, configured: str | None = None,
                  out_dir: str | Path | None = None) -> CropKeeper | None:
        """The keeper of a store (``crops_root``); None when keeping is off (0) or the store lives in memory."""
        if per_track <= 0 or str(location) == ":memory:":
            return None
        return cls(crops_root(location, configured, out_dir), per_track)

    def keep(self, track_uid: str, segment: int, index: int, t_start: float, t_end: float, jpeg: bytes) -> bool:
        """Keep one crop of a clip unless the track already has ``per_track``; returns whether it was written."""
        if not jpeg or not jpeg.startswith(_JPEG_SOI) or track_uid in self._erased:
            return False
        d = _track_dir(self.root, track_uid)
        name = f"{int(segment):06d}-{int(index):02d}_{round(t_start * 1000)}_{round(t_end * 1000)}.jpg"
        target = d / name
        if not target.exists():
            if d.is_dir() and sum(1 for _ in d.glob("*.jpg")) >= self.per_track:
                return False
            d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{name}.{os.getpid()}.tmp"
        tmp.write_bytes(jpeg)
        os.replace(tmp, target)  # readers never see half a file
        return True

    def keep_embeddings(self, embeddings: Iterable[object]) -> int:
        """Keep the thumbnails of ``Embedding``s (what the matcher stage hands over); returns how many were written."""
        n = 0
        for e in embeddings:
            n += self.keep(e.track_uid, e.segment, THUMBNAIL_INDEX, e.t_start, e.t_end, e.thumbnail)  # type: ignore[attr-defined]
        return n

    def keep_clip(self, clip: object) -> int:
        """Keep up to ``PER_CLIP`` crops of a ``Clip``, spread over it; returns how many were written."""
        frames = clip.frames  # type: ignore[attr-defined]
        picks = sorted({round(i * (len(frames) - 1) / max(PER_CLIP - 1, 1)) for i in range(min(PER_CLIP, len(frames)))})
        return sum(self.keep(clip.track_uid, clip.segment, k, clip.t_start, clip.t_end, frames[k])  # type: ignore[attr-defined]
                   for k in picks)

    def crops(self, track_uid: str) -> list[KeptCrop]:
        """A track's kept crops, in clip order (empty when none)."""
        d = _track_dir(self.root, track_uid)
        if not d.is_dir():
            return []
        out = []
        for f in d.iterdir():
            m = _NAME.match(f.name)
            if m:
                out.append(KeptCrop(int(m[1]), int(m[2]), int(m[3]) / 1000.0, int(m[4]) / 1000.0, f))
        return sorted(out, key=lambda c: (c.segment, c.index))

    def drop_tracks(self, track_uids: Sequence[str], erased: bool = False) -> int:
        """Delete the crops of ``track_uids`` (retention, erasure); returns how many tracks had some.

        Args:
            erased: the tracks were erased: clips of theirs still in flight are not kept either.
        """
        n = 0
        for uid in track_uids:
            if erased:
                self._erased.add(uid)
            d = _track_dir(self.root, uid)
            if d.is_dir():
                shutil.rmtree(d)
                n += 1
        return n

    def drop_older_than(self, ts: float) -> int:
        """Delete the crops of every track whose newest crop file was written before ``ts`` (UTC epoch
        seconds; retention of crops whose track row is gone or has no thumbnail); returns how many tracks had some."""
        if not self.root.is_dir():
            return 0
        n = 0
        for d in self.root.iterdir():
            files = [f for f in d.iterdir() if f.is_file()] if d.is_dir() else []
            if d.is_dir() and max((f.stat().st_mtime for f in files), default=0.0) < ts:
                shutil.rmtree(d)
                n += 1
        return n
