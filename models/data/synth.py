"""Synthetic VVI dataset written in the HITSZ-VCM layout (``xreid synth``).

N identities (``models.data.person``) walk past several visible and several thermal cameras
(``models.data.camera``); each appearance is a tracklet of person crops. The first
``num_identities - num_test_identities`` identities form the training split, the rest a held-out
test split whose infrared tracklets are the queries (``info/query_IDX.txt``), so
``models.data.vcm.load_vcm`` reads the result like the real benchmark. Everything is
deterministic by seed: every identity, camera and tracklet draws from its own seeded stream.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from models.data.camera import CameraSpec, render, sample_camera
from models.data.person import VIEWS, PersonSpec, sample_person
from models.data.tracklet import IR, RGB
from models.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SynthCfg:
    """Size and seed of a synthetic dataset."""

    num_identities: int = 60
    num_test_identities: int = 20
    rgb_cameras: int = 3
    ir_cameras: int = 3
    tracklets_per_camera: int = 1
    frames_per_tracklet: int = 12
    presence: float = 0.85          # probability that an identity passes a given camera
    height: int = 128
    width: int = 64
    jpeg_quality: int = 92
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_identities < 2 or not 1 <= self.num_test_identities < self.num_identities:
            raise ConfigError(f"need >= 2 identities and 1 <= test identities < identities, got "
                              f"{self.num_identities} and {self.num_test_identities}")
        if self.rgb_cameras < 1 or self.ir_cameras < 1:
            raise ConfigError("need at least one visible and one thermal camera")
        if self.tracklets_per_camera < 1 or self.frames_per_tracklet < 1:
            raise ConfigError("tracklets_per_camera and frames_per_tracklet must be >= 1")
        if not 0.0 < self.presence <= 1.0:
            raise ConfigError(f"presence must be in (0, 1], got {self.presence}")
        if self.height < 16 or self.width < 8:
            raise ConfigError(f"crop size {self.height}x{self.width} is too small (min 16x8)")

    @property
    def num_cameras(self) -> int:
        return self.rgb_cameras + self.ir_cameras


def make_world(cfg: SynthCfg) -> tuple[list[PersonSpec], list[CameraSpec]]:
    """The identities (index = pid - 1) and cameras (index = camera - 1) of a seed."""
    people = [sample_person(np.random.default_rng([cfg.seed, 0, pid])) for pid in range(cfg.num_identities)]
    cams = [sample_camera(np.random.default_rng([cfg.seed, 1, c]), RGB if c < cfg.rgb_cameras else IR)
            for c in range(cfg.num_cameras)]
    return people, cams


def render_tracklet(spec: PersonSpec, cam: CameraSpec, n_frames: int, height: int, width: int,
                    rng: np.random.Generator) -> list[np.ndarray]:
    """One walk past a camera: ``n_frames`` crops (H, W, 3) uint8 RGB."""
    view = VIEWS[int(rng.choice(len(VIEWS), p=np.asarray(cam.view_probs)))]
    phase = rng.uniform(0, 2 * np.pi)
    step = spec.cadence * rng.uniform(0.8, 1.2)          # frame rate differs between recordings
    scale = rng.uniform(0.9, 1.05)
    frames = []
    for _ in range(n_frames):
        dx = rng.normal(0, 0.015 * width)                # detector box jitter
        frames.append(render(spec, cam, phase, view, height, width, rng, scale=scale, dx=dx))
        phase += step
    return frames


def _appearances(cfg: SynthCfg, pid: int) -> list[int]:
    """Cameras (0-based) this identity passes; at least one of each modality."""
    rng = np.random.default_rng([cfg.seed, 2, pid])
    cams = [c for c in range(cfg.num_cameras) if rng.random() < cfg.presence]
    if not any(c < cfg.rgb_cameras for c in cams):
        cams.append(int(rng.integers(cfg.rgb_cameras)))
    if not any(c >= cfg.rgb_cameras for c in cams):
        cams.append(cfg.rgb_cameras + int(rng.integers(cfg.ir_cameras)))
    return sorted(cams)


def write_synth_vcm(out: str | Path, cfg: SynthCfg) -> Path:
    """Render the dataset into ``out`` in the HITSZ-VCM layout and return ``out``.

    Also writes ``synth.json`` (config, cameras, identities) so a dataset documents its origin.
    """
    root = Path(out)
    (root / "info").mkdir(parents=True, exist_ok=True)
    people, cams = make_world(cfg)
    num_train = cfg.num_identities - cfg.num_test_identities
    params = [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality]
    for split in ("train", "test"):
        names: list[str] = []
        tracks: list[str] = []
        queries: list[int] = []
        pids = range(num_train) if split == "train" else range(num_train, cfg.num_identities)
        for p in pids:
            pid = p + 1
            for c in _appearances(cfg, p):
                cam = cams[c]
                mcode, mdir = (1, "ir") if cam.modality == IR else (2, "rgb")
                folder = root / split.capitalize() / f"{pid:04d}" / mdir / f"D{c + 1}"
                folder.mkdir(parents=True, exist_ok=True)
                frame_id = 0
                for k in range(cfg.tracklets_per_camera):
                    rng = np.random.default_rng([cfg.seed, 3, p, c, k])
                    start = len(names) + 1
                    for img in render_tracklet(people[p], cam, cfg.frames_per_tracklet, cfg.height, cfg.width, rng):
                        frame_id += 1
                        cv2.imwrite(str(folder / f"{frame_id}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params)
                        names.append(f"{pid:04d}M{mcode}D{c + 1}T{k + 1}F{frame_id}.jpg")
                    tracks.append(f"{mcode} {start} {len(names)} {pid} {c + 1}")
                    if split == "test" and cam.modality == IR:
                        queries.append(len(tracks))
        (root / "info" / f"{split}_name.txt").write_text("\n".join(names) + "\n")
        (root / "info" / f"track_{split}_info.txt").write_text("\n".join(tracks) + "\n")
        if split == "test":
            (root / "info" / "query_IDX.txt").write_text(" ".join(map(str, queries)) + "\n")
    meta = {"generator": "xreid synth", "config": asdict(cfg), "cameras": [asdict(c) for c in cams],
            "identities": {f"{i + 1:04d}": asdict(p) for i, p in enumerate(people)},
            "train_pids": [1, num_train], "test_pids": [num_train + 1, cfg.num_identities]}
    (root / "synth.json").write_text(json.dumps(meta, indent=1))
    log.info("synthetic HITSZ-VCM tree written to %s (%d identities, %d cameras)", root, cfg.num_identities,
             cfg.num_cameras)
    return root
