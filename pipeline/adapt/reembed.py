"""Move a store to another re-ID model: re-embed every track from its kept crops and re-run matching.

Vectors of two models never share a gallery, so the move is whole: the store's identities, links and
merges are recomputed by a fresh ``Matcher`` fed the new embeddings in time order, and a track that has
no kept crops (kept off, or purged by retention) loses its old vector and identity instead of keeping a
vector of the old model beside the new ones. Every vector is computed before the store is touched; the
rewrite is one transaction for the reset and one for the new outcomes (the matcher's own ``save``): a
crash in between leaves the store without identities, and running ``reembed`` again finishes the move.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from models.errors import ConfigError
from pipeline.bus.messages import Embedding, make_clip_id
from pipeline.config.settings import MatcherCfg
from pipeline.matcher import records
from pipeline.matcher.matcher import Matcher
from pipeline.reid.camera_index import camera_key
from pipeline.store.base import Store
from pipeline.store.crops import CropKeeper, KeptCrop, crops_dir
from pipeline.store.identities import reset_identities
from pipeline.store.tracks import assigned_identities, list_tracks, model_ids

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReembedResult:
    model_id: str
    previous_model_ids: list[str]
    tracks: int
    tracks_moved: int
    tracks_without_crops: int
    clips: int
    identities_before: int
    identities_after: int

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _clips(kept: list[KeptCrop]) -> list[tuple[int, float, float, list[np.ndarray], bytes]]:
    """Kept crops grouped into their clips: (segment, t_start, t_end, RGB crops, first JPEG)."""
    by_segment: dict[int, list[KeptCrop]] = {}
    for c in kept:
        by_segment.setdefault(c.segment, []).append(c)
    out = []
    for seg, crops in sorted(by_segment.items()):
        imgs, first = [], b""
        for c in crops:
            data = c.path.read_bytes()
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                log.warning("reembed: unreadable crop %s skipped", c.path)
                continue
            imgs.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            first = first or data
        if imgs:
            out.append((seg, crops[0].t_start, crops[0].t_end, imgs, first))
    return out


def reembed(store_path: str | Path, encoder: object, matcher_cfg: MatcherCfg,
            progress: Callable[[int], None] | None = None) -> ReembedResult:
    """Re-embed the store at ``store_path`` under ``encoder`` (a ``ReidEncoder``) and relink it.

    Args:
        progress: called with the number of tracks embedded so far.

    Raises:
        ConfigError: no store there, or no kept crops at all (nothing to re-embed from).
    """
    path = Path(store_path)
    if not path.is_file():
        raise ConfigError(f"reembed: no store at {path}")
    root = crops_dir(path)
    if not root.is_dir():
        raise ConfigError(f"reembed: store {path} has no kept crops ({root} is missing; replay with "
                          "store.keep_crops > 0): its tracks cannot be re-embedded")
    keeper = CropKeeper(root)
    model_id = str(encoder.model_id)  # type: ignore[attr-defined]
    with Store(path) as store:
        rows = [(t.track_uid, t.camera_id, t.modality) for t in list_tracks(store)]
        previous = model_ids(store)
        before = len(assigned_identities(store))
        embeddings: list[Embedding] = []
        moved = without = 0
        for k, (uid, cam, modality) in enumerate(rows):
            clips = _clips(keeper.crops(uid))
            if not clips:
                without += 1
                continue
            moved += 1
            vectors = encoder.encode([c[3] for c in clips], [modality] * len(clips),  # type: ignore[attr-defined]
                                     [camera_key(cam, modality)] * len(clips))
            for (seg, t0, t1, _, thumb), vec in zip(clips, vectors, strict=True):
                embeddings.append(Embedding(make_clip_id(cam, uid, seg), cam, modality, uid, seg, t0, t1,
                                            np.ascontiguousarray(vec, np.float32), model_id, thumb))
            if progress is not None:
                progress(k + 1)
        embeddings.sort(key=lambda e: (e.t_end, e.t_start, e.clip_id))   # the order the matcher would have seen
        matcher = Matcher(matcher_cfg)
        outcomes = [matcher.observe(e) for e in embeddings]
        reset_identities(store)
        records.save(store, outcomes)
        after = len(assigned_identities(store))
    log.info("reembed %s: %d tracks moved to %s, %d without crops unlinked", path, moved, model_id, without)
    return ReembedResult(model_id, previous, len(rows), moved, without, len(embeddings), before, after)
