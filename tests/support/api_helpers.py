"""A store populated the way the pipeline populates it, for the API and dashboard tests.

Tracks and identities are written by the real ``Matcher`` + ``records.save`` (the matcher stage's
own persistence), from embeddings with a known structure, plus one camera-side-only track written
with ``tracks.upsert_track`` (a track the matcher has not seen yet).

People (model ``test@0``, hand-made 16-d vectors):
    P0: cam-a rgb (t 1000-1010), cam-ir ir (1020-1030), cam-b rgb (1100-1120)  -> one identity, 3 tracks
    P1: cam-a rgb (1005-1015), cam-ir ir (1040-1050)                          -> one identity, 2 tracks
    P2: cam-b rgb (1200-1210)                                                  -> one identity, 1 track
    P3: cam-a rgb (1300-1305) and cam-b rgb (1310-1315) found two identities, then cam-ir ir
        (1320-1330) matches both well enough to merge them                     -> one identity after a merge
Image-search tracks (model of the tiny encoder): one per crop in ``SEARCH_CROPS``, each its own identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from pipeline.bus.messages import Embedding, make_clip_id
from pipeline.config.settings import MatcherCfg, PairThresholds
from pipeline.matcher import records
from pipeline.matcher.announce import Announcer
from pipeline.matcher.matcher import Matcher
from pipeline.matcher.watchlist import Watchlist
from pipeline.store.base import Store
from pipeline.store.identities import resolve
from pipeline.store.tracks import TrackRow, upsert_track
from tests.support.matcher_helpers import view

TEST_MODEL = "test@0"
T0 = 1_790_000_000.0  # 2026-09-21T14:13:20Z: epoch seconds of the test footage


def crop_jpeg(color: tuple[int, int, int], modality: str = "rgb", hw: tuple[int, int] = (128, 64)) -> bytes:
    """A person-shaped test crop: head and body of one colour on a grey background."""
    h, w = hw
    img = np.full((h, w, 3), 90, np.uint8)
    cv2.circle(img, (w // 2, h // 6), h // 10, color, -1)
    cv2.rectangle(img, (w // 4, h // 4), (3 * w // 4, 9 * h // 10), color, -1)
    if modality == "ir":
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        img = cv2.cvtColor(255 - gray, cv2.COLOR_GRAY2BGR)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def crop_rgb(color: tuple[int, int, int]) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(crop_jpeg(color), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


COLORS = [(40, 40, 220), (40, 200, 40), (220, 80, 40), (0, 200, 220)]
SEARCH_CROPS = [(250, 0, 250), (0, 120, 255), (255, 255, 0)]

# (person, camera, modality, t_start - T0, t_end - T0, vector)
TRACKS = [
    (0, "cam-a", "rgb", 1000, 1010, view(0, 0.95, 8)),
    (1, "cam-a", "rgb", 1005, 1015, view(1, 0.95, 9)),
    (0, "cam-ir", "ir", 1020, 1030, view(0, 0.9, 10)),
    (1, "cam-ir", "ir", 1040, 1050, view(1, 0.9, 11)),
    (0, "cam-b", "rgb", 1100, 1120, view(0, 0.95, 12)),
    (2, "cam-b", "rgb", 1200, 1210, view(2, 0.95, 13)),
    (3, "cam-a", "rgb", 1300, 1305, view(3, 0.75, 14)),
    (3, "cam-b", "rgb", 1310, 1315, view(3, 0.75, 15)),
    (3, "cam-ir", "ir", 1320, 1330, view(3, 0.999, 4)),
]


@dataclass
class Populated:
    path: Path
    track_uids: list[str] = field(default_factory=list)        # TRACKS order
    identity_of: dict[str, int] = field(default_factory=dict)   # track uid -> resolved identity
    search_uids: list[str] = field(default_factory=list)        # SEARCH_CROPS order
    orphan_uid: str = "cam-a-r9-orphan"                          # camera-side track, no identity yet
    merged: tuple[int, int] | None = None                        # (winner, loser)


def populate(path: Path, encoder=None, announce: bool = False) -> Populated:
    """Write the scenario above into a fresh store at ``path`` through the real matcher.

    Args:
        announce: also log the matcher's events and watchlist hits (entries already in the store), as
            the matcher stage does.
    """
    out = Populated(path)
    cfg = MatcherCfg(thresholds=PairThresholds(rgb_rgb=0.6, ir_ir=0.6, rgb_ir=0.45), min_clips=1, min_gap=0.0)  # one-clip tracks
    matcher = Matcher(cfg)
    with Store(path) as store:
        announcer = Announcer(site="test", watchlist=Watchlist(store, refresh_s=0.0)) if announce else None
        for i, (person, cam, modality, t0, t1, vec) in enumerate(TRACKS):
            uid = f"{cam}-r1-{i}"
            out.track_uids.append(uid)
            emb = Embedding(make_clip_id(cam, uid, 0), cam, modality, uid, 0, T0 + t0, T0 + t1, vec, TEST_MODEL,
                            crop_jpeg(COLORS[person], modality))
            outcome = matcher.observe(emb)
            if announcer is not None:
                ann = announcer.begin()
                announcer.outcome(ann, outcome, matcher)
                records.save(store, [outcome], also=announcer.writer(ann))
                announcer.publish(ann)
            else:
                records.save(store, [outcome])
            if outcome.merges:
                out.merged = (outcome.merges[0].winner, outcome.merges[0].loser)
            upsert_track(store, TrackRow(uid, cam, modality, T0 + t0, T0 + t1, n_frames=int(5 * (t1 - t0)), n_clips=1))
        if encoder is not None:
            strict = Matcher(MatcherCfg(thresholds=PairThresholds(rgb_rgb=0.9999, ir_ir=0.9999, rgb_ir=0.9999)))
            strict.next_identity = matcher.next_identity
            strict.next_track = matcher.next_track
            for i, color in enumerate(SEARCH_CROPS):
                uid = f"cam-s-r1-{i}"
                vec = encoder.encode([[crop_rgb(color)] * 2], ["rgb"])[0]
                emb = Embedding(make_clip_id("cam-s", uid, 0), "cam-s", "rgb", uid, 0, T0 + 2000 + 10 * i,
                                T0 + 2005 + 10 * i, vec, encoder.model_id, crop_jpeg(color))
                records.save(store, [strict.observe(emb)])
                out.search_uids.append(uid)
        upsert_track(store, TrackRow(out.orphan_uid, "cam-a", "rgb", T0 + 1400, T0 + 1401, n_frames=3, n_clips=0))
        for uid in out.track_uids + out.search_uids:
            (ident,) = store.execute("SELECT identity_id FROM tracks WHERE track_uid = ?", (uid,))[0]
            out.identity_of[uid] = resolve(store, int(ident))
    return out
