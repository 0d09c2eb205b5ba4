"""BUPTCampus reader (published layout; protocol of the reference ``datasets/set/bupt.py``).

Layout under ``root``::

    DATA/...                 frames; every path in data_paths.json is relative to DATA/
    data_paths.json          {"<pid>": {"RGB": {"<camera>": {"<tracklet>": [frame, ...]}}, "IR": {...}}}
    train.txt                one tracklet per line: "<pid> <modality> <camera> <tracklet>"
    train_auxiliary.txt      same format (auxiliary identities; parsed, not trained on, as in the reference)
    query.txt, gallery.txt   same format, modality RGB or IR

Cameras are LS3, G25, CQ1, W4, TSG1, TSG2 (ids 0..5; a visible and a thermal sensor share the
camera id). Training lines have modality ``RGB/IR`` and yield a visible and an infrared
tracklet; single-frame tracklets are dropped (and in training, the pair with them). Infrared
queries are matched against the visible gallery, visible queries against the infrared gallery.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from models.data.tracklet import IR, RGB, Tracklet, VVIDataset
from models.errors import ContractError

log = logging.getLogger(__name__)

CAMERAS = {"LS3": 0, "G25": 1, "CQ1": 2, "W4": 3, "TSG1": 4, "TSG2": 5}
LAYOUT = ("DATA/, data_paths.json, train.txt, train_auxiliary.txt, query.txt, gallery.txt "
          "(lines: '<pid> <RGB/IR|RGB|IR> <camera> <tracklet>')")
SPLIT_FILES = ("train.txt", "train_auxiliary.txt", "query.txt", "gallery.txt")


def check_layout(root: Path) -> None:
    """Raise one clear error naming the expected layout when ``root`` is not a BUPTCampus tree."""
    missing = [f for f in ("data_paths.json", *SPLIT_FILES) if not (root / f).is_file()]
    if not (root / "DATA").is_dir():
        missing.insert(0, "DATA/")
    if missing:
        raise ContractError(f"{root} is not a BUPTCampus tree: missing {', '.join(missing)} (expected layout: {LAYOUT})")


def _parse(path: Path) -> list[tuple[str, str, str, str]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 4:
            raise ContractError(f"{path}:{n}: expected '<pid> <modality> <camera> <tracklet>', got {line!r}")
        if parts[2] not in CAMERAS:
            raise ContractError(f"{path}:{n}: unknown camera {parts[2]!r} (known: {', '.join(CAMERAS)})")
        rows.append((parts[0], parts[1], parts[2], parts[3]))
    return rows


def _frames(paths: dict, data_dir: Path, pid: str, modality: str, camera: str, tracklet: str) -> tuple[str, ...]:
    try:
        names = paths[pid][modality][camera][tracklet]
    except KeyError:
        raise ContractError(f"BUPTCampus data_paths.json has no {modality} tracklet {pid}/{camera}/{tracklet}") from None
    return tuple(str(data_dir / n) for n in names)


def load_bupt(root: str | Path, check_frames: bool = True) -> VVIDataset:
    """Read a BUPTCampus tree (see module doc for the layout).

    Raises:
        ContractError: the layout is wrong, a file is malformed, or frames are missing.
    """
    root = Path(root)
    check_layout(root)
    data_dir = root / "DATA"
    try:
        paths = json.loads((root / "data_paths.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ContractError(f"{root / 'data_paths.json'}: invalid JSON: {e}") from None
    train_rows = _parse(root / "train.txt")
    aux_rows = _parse(root / "train_auxiliary.txt")
    pid_map = {pid: i for i, pid in enumerate(sorted({r[0] for r in train_rows}, key=int))}

    train: list[Tracklet] = []
    for pid, modality, camera, tracklet in train_rows:
        if modality != "RGB/IR":
            raise ContractError(f"BUPTCampus train.txt: only 'RGB/IR' training lines are supported, got {modality!r}")
        ir = _frames(paths, data_dir, pid, "IR", camera, tracklet)
        rgb = _frames(paths, data_dir, pid, "RGB", camera, tracklet)
        if len(ir) == 1:
            continue
        train.append(Tracklet(ir, pid_map[pid], CAMERAS[camera], IR))
        train.append(Tracklet(rgb, pid_map[pid], CAMERAS[camera], RGB))

    def test_split(fname: str) -> tuple[list[Tracklet], list[Tracklet]]:
        irs, rgbs = [], []
        for pid, modality, camera, tracklet in _parse(root / fname):
            if modality not in ("RGB", "IR"):
                raise ContractError(f"BUPTCampus {fname}: modality must be RGB or IR, got {modality!r}")
            frames = _frames(paths, data_dir, pid, modality, camera, tracklet)
            if len(frames) == 1:
                continue
            t = Tracklet(frames, int(pid), CAMERAS[camera], IR if modality == "IR" else RGB)
            (irs if t.modality == IR else rgbs).append(t)
        return irs, rgbs

    query_ir, query_rgb = test_split("query.txt")
    gallery_ir, gallery_rgb = test_split("gallery.txt")
    if check_frames:
        for t in (*train, *query_ir, *query_rgb, *gallery_ir, *gallery_rgb):
            if not Path(t.frames[0]).is_file():
                raise ContractError(f"BUPTCampus frame missing: {t.frames[0]} (expected layout: {LAYOUT})")
    kept = sorted({t.pid for t in train})
    if len(kept) != len(pid_map):
        remap = {p: i for i, p in enumerate(kept)}
        train = [Tracklet(t.frames, remap[t.pid], t.camid, t.modality) for t in train]
    ds = VVIDataset(name="buptcampus", train=tuple(train), ir_query=tuple(query_ir), rgb_gallery=tuple(gallery_rgb),
                    rgb_query=tuple(query_rgb), ir_gallery=tuple(gallery_ir), num_train_pids=len(kept),
                    num_cameras=len(CAMERAS))
    log.info("loaded %s (%d auxiliary tracklets not used)\n%s", root, len(aux_rows), ds.summary())
    return ds
