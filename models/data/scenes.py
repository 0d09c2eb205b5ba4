"""Multi-person scene videos with MOT ground truth and global identities (``xreid synth --scenes``).

The same synthetic people walk through the field of view of several cameras (at least one
visible and one thermal), one after another, so an end-to-end run (detect → track → re-ID →
match) has a known answer: in every camera's ``gt/gt.txt`` the track id is the person's global
identity. See docs/training.md for the layout.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from models.data.camera import CameraSpec, finish_thermal, finish_visible, person_colours, sample_camera, temperatures
from models.data.person import BG, PersonSpec, draw_person, sample_person
from models.data.tracklet import IR, MODALITY_NAMES, RGB
from models.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SceneCfg:
    """Scene videos: who walks where, for how long, at what size."""

    num_people: int = 4
    rgb_cameras: int = 1
    ir_cameras: int = 1
    width: int = 480
    height: int = 360
    fps: int = 10
    num_frames: int = 160
    person_height: tuple[int, int] = (170, 230)   # pixels, nearest to farthest lane
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_people < 1 or self.rgb_cameras < 1 or self.ir_cameras < 1:
            raise ConfigError("scenes need >= 1 person, >= 1 visible and >= 1 thermal camera")
        if self.person_height[0] < 32 or self.person_height[1] > self.height:
            raise ConfigError(f"person_height {self.person_height} must lie in [32, {self.height}]")
        if self.num_frames < 10 or self.fps < 1:
            raise ConfigError("num_frames must be >= 10 and fps >= 1")


@dataclass(frozen=True)
class Walk:
    """One crossing of one camera's view by one person."""

    person: int          # index; global identity = person + 1
    start: int           # first frame
    direction: int       # +1 walks right, -1 walks left
    lane: float          # 0 far .. 1 near: size and foot line
    speed: float         # pixels per frame at lane size


def plan_walks(cfg: SceneCfg, people: list[PersonSpec], cam_index: int) -> list[Walk]:
    """Staggered crossings: everyone crosses each camera once, later cameras later (transit time)."""
    rng = np.random.default_rng([cfg.seed, 10, cam_index])
    gap = max(1, cfg.num_frames // (cfg.num_people + 2))
    walks = []
    for i in range(cfg.num_people):
        start = int(i * gap + rng.integers(0, max(1, gap // 2)))
        walks.append(Walk(person=i, start=start, direction=1 if rng.random() < 0.5 else -1,
                          lane=float(rng.uniform(0, 1)), speed=float(rng.uniform(0.022, 0.03))))
    return walks


def _place(cfg: SceneCfg, walk: Walk, t: int) -> tuple[int, int, int] | None:
    """(x_left, y_top, person_height) of the person's canvas at frame t, or None before the walk."""
    if t < walk.start:
        return None
    ph = int(cfg.person_height[1] - (cfg.person_height[1] - cfg.person_height[0]) * (1 - walk.lane))
    pw = ph // 2
    travelled = (t - walk.start) * walk.speed * ph
    x = -pw + travelled if walk.direction > 0 else cfg.width - travelled
    if x > cfg.width or x < -pw:
        return None
    foot = cfg.height - 8 - int((1 - walk.lane) * 0.12 * cfg.height)
    return int(x), foot - ph, ph


def _scene_background(cfg: SceneCfg, cam: CameraSpec) -> np.ndarray:
    rng = np.random.default_rng(cam.bg_seed)
    h, w = cfg.height, cfg.width
    ys = np.linspace(0, 1, h)[:, None, None]
    if cam.modality == RGB:
        img = (1 - ys) * rng.uniform(0.3, 0.8, 3) + ys * rng.uniform(0.2, 0.6, 3) + np.zeros((h, w, 3))
        for _ in range(6):
            x0, y0, bw, bh = rng.uniform(0, 1), rng.uniform(0, 0.6), rng.uniform(0.05, 0.3), rng.uniform(0.1, 0.4)
            img[int(y0 * h):int(min(1, y0 + bh) * h), int(x0 * w):int(min(1, x0 + bw) * w)] = rng.uniform(0.1, 0.9, 3)
        return img
    t = rng.uniform(0.12, 0.28) + 0.08 * ys[..., 0] * rng.uniform(-1, 1) + np.zeros((h, w))
    return t + cv2.resize(rng.normal(0, 0.04, (6, 8)), (w, h), interpolation=cv2.INTER_CUBIC)


def render_camera(cfg: SceneCfg, people: list[PersonSpec], cam: CameraSpec, cam_index: int, out_dir: Path) -> int:
    """Write one camera's video and MOT ground truth; returns the number of gt boxes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gt").mkdir(exist_ok=True)
    walks = plan_walks(cfg, people, cam_index)
    base = _scene_background(cfg, cam)
    writer = cv2.VideoWriter(str(out_dir / "video.avi"), cv2.VideoWriter_fourcc(*"MJPG"), cfg.fps,
                             (cfg.width, cfg.height))
    rng = np.random.default_rng([cfg.seed, 11, cam_index])
    rows: list[str] = []
    phases = {w.person: float(np.random.default_rng([cfg.seed, 12, cam_index, w.person]).uniform(0, 6.28))
              for w in walks}
    for t in range(cfg.num_frames):
        scene = base.copy()
        owner = np.full((cfg.height, cfg.width), -1, np.int32)
        placed = []
        for w in sorted(walks, key=lambda w: w.lane):                     # far lanes first, near ones occlude
            pos = _place(cfg, w, t)
            if pos is None:
                continue
            x, y, ph = pos
            spec = people[w.person]
            phase = phases[w.person] + spec.cadence * (t - w.start)
            label, pattern = draw_person(spec, phase, "right" if w.direction > 0 else "left", ph, ph // 2)
            shade = person_colours(spec, label, pattern, rng) if cam.modality == RGB else temperatures(spec, label, pattern)
            # paste the canvas, clipped to the frame
            x0, y0 = max(0, x), max(0, y)
            x1, y1 = min(cfg.width, x + ph // 2), min(cfg.height, y + ph)
            if x1 <= x0 or y1 <= y0:
                continue
            sub = (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
            mask = label[sub] != BG
            region = scene[y0:y1, x0:x1]
            region[mask] = shade[sub][mask]
            owner[y0:y1, x0:x1][mask] = w.person
            ys, xs = np.nonzero(label != BG)
            placed.append((w.person, x + xs.min(), y + ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1,
                           int((label != BG).sum())))
        for person, bx, by, bw, bh, area in placed:
            visible = int((owner == person).sum()) / max(1, area)
            if visible == 0.0:
                continue                                               # still entirely outside the frame
            rows.append(f"{t + 1},{person + 1},{bx},{by},{bw},{bh},1,1,{visible:.3f}")
        if cam.modality == RGB:
            frame = finish_visible(scene, cam, rng)
        else:
            frame = finish_thermal(scene, cam, rng, blur_ref=int(np.mean(cfg.person_height)))
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    (out_dir / "gt" / "gt.txt").write_text("\n".join(rows) + ("\n" if rows else ""))
    (out_dir / "seqinfo.ini").write_text(
        f"[Sequence]\nname={out_dir.name}\nimDir=video.avi\nframeRate={cfg.fps}\nseqLength={cfg.num_frames}\n"
        f"imWidth={cfg.width}\nimHeight={cfg.height}\nimExt=.jpg\n")
    return len(rows)


def write_scenes(out: str | Path, cfg: SceneCfg) -> Path:
    """Render every camera of the scene set into ``out``; writes ``scenes.json`` describing them."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    people = [sample_person(np.random.default_rng([cfg.seed, 0, i])) for i in range(cfg.num_people)]
    cameras = []
    n_cams = cfg.rgb_cameras + cfg.ir_cameras
    for c in range(n_cams):
        modality = RGB if c < cfg.rgb_cameras else IR
        cam = sample_camera(np.random.default_rng([cfg.seed, 1, c]), modality)
        cam_id = f"cam{c}-{MODALITY_NAMES[modality]}"
        boxes = render_camera(cfg, people, cam, c, root / cam_id)
        cameras.append({"camera_id": cam_id, "modality": MODALITY_NAMES[modality], "video": f"{cam_id}/video.avi",
                        "gt": f"{cam_id}/gt/gt.txt", "gt_boxes": boxes, "camera": asdict(cam)})
        log.info("scene camera %s: %d gt boxes", cam_id, boxes)
    meta = {"generator": "xreid synth --scenes", "config": asdict(cfg), "fps": cfg.fps, "width": cfg.width,
            "height": cfg.height, "num_frames": cfg.num_frames, "identities": list(range(1, cfg.num_people + 1)),
            "mot_columns": ["frame", "id", "bb_left", "bb_top", "bb_width", "bb_height", "conf", "class", "visibility"],
            "cameras": cameras}
    (root / "scenes.json").write_text(json.dumps(meta, indent=1))
    return root
