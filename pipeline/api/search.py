"""Nearest identities to a query vector, over faiss galleries rebuilt from the store.

The API keeps one ``pipeline.matcher.gallery.Gallery`` per model id (vectors of different models
never meet), built from the tracks' stored embeddings and rebuilt when the store's embeddings
change (a cheap fingerprint query decides). Hits are tracks; each identity is scored by its best
track, and identities are resolved through merges at query time, so a merge needs no rebuild.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from pipeline.api.queries import Snapshot
from pipeline.config.settings import GalleryCfg
from pipeline.matcher.gallery import Gallery

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IdentityHit:
    identity_id: int
    score: float
    track_uid: str
    camera_id: str
    modality: str


class SearchIndex:
    """Per-model galleries of the store's track embeddings, cached between requests.

    Args:
        cfg: faiss index kind (``flat`` is exact; ``hnsw`` for very large stores).
    """

    def __init__(self, cfg: GalleryCfg | None = None) -> None:
        self.cfg = cfg or GalleryCfg()
        self._lock = threading.Lock()
        self._galleries: dict[str, tuple[tuple[int, float], Gallery | None]] = {}

    def _gallery(self, snap: Snapshot, model_id: str) -> Gallery | None:
        fingerprint = snap.gallery_fingerprint(model_id)
        with self._lock:
            cached = self._galleries.get(model_id)
            if cached is not None and cached[0] == fingerprint:
                return cached[1]
            keys, vectors = snap.gallery(model_id)
            gallery = None
            if len(keys):
                gallery = Gallery(vectors.shape[1], self.cfg)
                gallery.upsert(keys, vectors)
            self._galleries[model_id] = (fingerprint, gallery)
            log.info("search gallery for %s rebuilt: %d tracks", model_id, len(keys))
            return gallery

    def nearest(self, snap: Snapshot, model_id: str, query: np.ndarray, k: int,
                exclude_track_no: int | None = None) -> list[IdentityHit]:
        """The ``k`` identities whose best track is most similar to ``query`` ((D,) unit float32)."""
        gallery = self._gallery(snap, model_id)
        if gallery is None or len(gallery) == 0:
            return []
        if query.shape != (gallery.dim,):
            return []  # cannot happen for one model id; a vector of another shape matches nothing
        fetch = min(len(gallery), 4 * k + 1)
        while True:
            scores, keys = gallery.search(query, fetch)
            rows = snap.tracks_by_number([int(x) for x in keys[0] if x >= 0])
            best: dict[int, IdentityHit] = {}
            for score, key in zip(scores[0].tolist(), keys[0].tolist(), strict=True):
                row = rows.get(key)
                if key < 0 or key == exclude_track_no or row is None or row["pid"] is None:
                    continue
                if row["pid"] not in best:  # results are best first: the first track is the best
                    best[row["pid"]] = IdentityHit(int(row["pid"]), float(score), row["track_uid"], row["camera_id"],
                                                   row["modality"])
            if len(best) >= k or fetch >= len(gallery):
                return sorted(best.values(), key=lambda h: -h.score)[:k]
            fetch = min(len(gallery), fetch * 4)  # many tracks of few identities: look deeper
