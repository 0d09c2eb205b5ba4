"""What a deployment's store knows without labels, as training material: tracks, their crops, and who is not whom.

Facts used (none needs a person to label anything):

* the crops of one track are one person;
* two tracks one camera saw at the same time are two people (``hard_negatives``);
* a day/night camera sees the same scene in both modalities, so an RGB crop rendered gray, near-infrared
  (``pipeline/looks.NightNirLook``) or pseudo-thermal (``pipeline/pseudo_thermal.PseudoThermal``) is still
  the same person (``bridge``).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from models.errors import ConfigError
from pipeline.ingest.looks import NightNirLook
from pipeline.ingest.pseudo_thermal import PseudoThermal
from pipeline.store.base import Store
from pipeline.store.crops import CropKeeper, crops_dir
from pipeline.store.tracks import list_tracks, model_ids

log = logging.getLogger(__name__)

MIN_TRACKS = 8                    # fewer tracks with crops: nothing worth adapting to
BRIDGES = ("gray", "nir", "thermal")
BRIDGE_MODALITY = {"gray": "rgb", "nir": "ir", "thermal": "ir"}
_NIR = NightNirLook(noise_sigma=4.0)


@dataclass
class SiteTrack:
    """One stored track and its kept crops (RGB uint8, resized to the model's input)."""

    track_uid: str
    camera_id: str
    modality: str
    t_start: float
    t_end: float
    crops: list[np.ndarray]
    segments: list[int] = field(default_factory=list)   # clip segment of each crop


@dataclass
class SiteData:
    """The store's tracks with crops, the models that embedded it, and what was left out."""

    store_path: str
    tracks: list[SiteTrack]
    store_model_ids: list[str]
    skipped_no_crops: int

    @property
    def n_crops(self) -> int:
        return sum(len(t.crops) for t in self.tracks)

    def counts(self) -> dict[str, object]:
        return {"tracks": len(self.tracks), "crops": self.n_crops,
                "tracks_without_crops": self.skipped_no_crops,
                "cameras": dict(Counter(t.camera_id for t in self.tracks)),
                "modalities": dict(Counter(t.modality for t in self.tracks)),
                "hard_negative_pairs": int(hard_negatives(self.tracks).sum() // 2)}


def load_site(store_path: str | Path, input_hw: tuple[int, int], min_tracks: int = MIN_TRACKS) -> SiteData:
    """Read the store's tracks and their kept crops (read-only).

    Raises:
        ConfigError: no store, no crops, or fewer than ``min_tracks`` tracks with crops (the message says
            which is missing).
    """
    path = Path(store_path)
    if not path.is_file():
        raise ConfigError(f"adapt: no store at {path}")
    root = crops_dir(path)
    with Store(path, readonly=True) as store:
        rows = [(t.track_uid, t.camera_id, t.modality, t.t_start, t.t_end) for t in list_tracks(store)]
        models = model_ids(store)
    if not root.is_dir():
        raise ConfigError(f"adapt: store {path} has {len(rows)} tracks but no kept crops ({root} is missing; "
                          "replay with store.keep_crops > 0)")
    keeper = CropKeeper(root)
    tracks, skipped = [], 0
    h, w = input_hw
    for uid, cam, modality, t0, t1 in rows:
        kept = keeper.crops(uid)
        crops, segments = [], []
        for c in kept:
            img = cv2.imread(str(c.path), cv2.IMREAD_COLOR)
            if img is None:
                log.warning("adapt: unreadable crop %s skipped", c.path)
                continue
            rgb = cv2.cvtColor(cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
            crops.append(rgb)
            segments.append(c.segment)
        if not crops:
            skipped += 1
            continue
        tracks.append(SiteTrack(str(uid), str(cam), str(modality), float(t0), float(t1), crops, segments))
    if len(tracks) < min_tracks:
        raise ConfigError(f"adapt: store {path} has {len(tracks)} tracks with kept crops "
                          f"({len(rows)} tracks in all), at least {min_tracks} are needed")
    return SiteData(str(path), tracks, sorted(models), skipped)


def hard_negatives(tracks: list[SiteTrack], slack_s: float = 0.2) -> np.ndarray:
    """(N, N) bool: tracks of one camera whose time spans overlap by more than ``slack_s`` (two people)."""
    n = len(tracks)
    cam = np.asarray([t.camera_id for t in tracks])
    t0 = np.asarray([t.t_start for t in tracks])
    t1 = np.asarray([t.t_end for t in tracks])
    overlap = np.minimum(t1[:, None], t1[None, :]) - np.maximum(t0[:, None], t0[None, :])
    out = (cam[:, None] == cam[None, :]) & (overlap > slack_s)
    out[np.arange(n), np.arange(n)] = False
    return out


def bridge(crop_rgb: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """An RGB crop rendered in another modality's look (RGB uint8 out, three equal channels).

    ``gray``: luminance; ``nir``: the night near-infrared look (channel mix, gamma, blur, noise);
    ``thermal``: pseudo-thermal, the crop's border colour taken as the cold background.
    """
    bgr = cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2BGR)
    if kind == "gray":
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    elif kind == "nir":
        gray = _NIR.render(bgr, rng)[..., 0]
    elif kind == "thermal":
        border = np.concatenate([bgr[0], bgr[-1], bgr[:, 0], bgr[:, -1]]).astype(np.float32)
        background = np.broadcast_to(np.median(border, axis=0) / 255.0, bgr.shape).astype(np.float32)
        gray = PseudoThermal(background, seed=int(rng.integers(1 << 31))).render(bgr)
    else:
        raise ValueError(f"unknown bridge {kind!r}; known: {', '.join(BRIDGES)}")
    return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
