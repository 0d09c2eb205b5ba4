"""HITSZ-VCM reader (published layout; protocol of the reference ``datasets/set/vcm.py``).

Layout under ``root``::

    info/train_name.txt        one frame name per line, e.g. 0001M2D3T1F1.jpg
                               (pid 0001, modality M1=infrared/M2=visible, camera D3, tracklet T1, frame F1)
    info/track_train_info.txt  one tracklet per line: "modality start end pid camera"
                               (start/end: 1-based inclusive line numbers in train_name.txt; camera 1-based)
    info/test_name.txt         the same for the test split
    info/track_test_info.txt
    info/query_IDX.txt         1-based rows of track_test_info.txt used as queries (infrared→visible)
    Train/<pid>/<rgb|ir>/D<camera>/<frame>.jpg
    Test/<pid>/<rgb|ir>/D<camera>/<frame>.jpg

Protocol as in the reference: training identities relabelled 0..N-1, cameras made 0-based,
tracklets shorter than ``min_seq_len`` frames dropped (default 12, the reference's); the
infrared→visible gallery is every test tracklet not in ``query_IDX``, and visible→infrared swaps
the two lists.
"""

from __future__ import annotations

import logging
from pathlib import Path

from models.data.tracklet import IR, RGB, Tracklet, VVIDataset
from models.errors import ContractError

log = logging.getLogger(__name__)

LAYOUT = ("info/train_name.txt, info/track_train_info.txt, info/test_name.txt, info/track_test_info.txt, "
          "info/query_IDX.txt, Train/<pid>/<rgb|ir>/D<cam>/<frame>.jpg, Test/...")
INFO_FILES = ("train_name.txt", "track_train_info.txt", "test_name.txt", "track_test_info.txt", "query_IDX.txt")
VCM_MODALITY = {1: IR, 2: RGB}      # the track files' modality column


def frame_relpath(name: str) -> str:
    """``0001M2D3T1F1.jpg`` → ``0001/rgb/D3/1.jpg`` (tracklet id is not part of the path)."""
    try:
        pid = name[0:4]
        modality = "ir" if name[5] == "1" else "rgb"
        d, t, f = name.index("D"), name.index("T"), name.index("F")
    except (IndexError, ValueError):
        raise ContractError(f"HITSZ-VCM frame name {name!r} is not <pid4>M<m>D<cam>T<track>F<frame>.<ext>") from None
    return f"{pid}/{modality}/{name[d:t]}/{name[f + 1:]}"


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _read_tracks(path: Path) -> list[tuple[int, int, int, int, int]]:
    rows = []
    for n, line in enumerate(_read_lines(path), 1):
        parts = line.split()
        if len(parts) != 5 or not all(p.lstrip("-").isdigit() for p in parts):
            raise ContractError(f"{path}:{n}: expected 'modality start end pid camera' integers, got {line!r}")
        m, start, end, pid, cam = (int(p) for p in parts)
        if m not in VCM_MODALITY:
            raise ContractError(f"{path}:{n}: modality must be 1 (infrared) or 2 (visible), got {m}")
        rows.append((m, start, end, pid, cam))
    return rows


def check_layout(root: Path) -> None:
    """Raise one clear error naming the expected layout when ``root`` is not a HITSZ-VCM tree."""
    missing = [f"info/{f}" for f in INFO_FILES if not (root / "info" / f).is_file()]
    missing += [d for d in ("Train", "Test") if not (root / d).is_dir()]
    if missing:
        raise ContractError(f"{root} is not a HITSZ-VCM tree: missing {', '.join(missing)} (expected layout: {LAYOUT})")


def _tracklets(root: Path, split: str, names: list[str], rows: list[tuple[int, int, int, int, int]],
               pid_map: dict[int, int] | None, min_seq_len: int) -> list[Tracklet]:
    out = []
    for m, start, end, pid, cam in rows:
        if start < 1 or end > len(names) or end < start:
            raise ContractError(f"HITSZ-VCM {split}: tracklet lines {start}..{end} outside the {len(names)} frame names")
        frames = tuple(str(root / split / frame_relpath(n)) for n in names[start - 1:end])
        if len(frames) < min_seq_len:
            continue
        out.append(Tracklet(frames=frames, pid=pid_map[pid] if pid_map else pid, camid=cam - 1,
                            modality=VCM_MODALITY[m]))
    return out


def load_vcm(root: str | Path, min_seq_len: int = 12, num_cameras: int = 12, check_frames: bool = True,
             name: str = "hitsz-vcm") -> VVIDataset:
    """Read a HITSZ-VCM tree (see module doc for the layout).

    Args:
        root: dataset root.
        min_seq_len: drop tracklets with fewer frames (the reference uses 12).
        num_cameras: camera count for the camera embedding (12 on HITSZ-VCM).
        check_frames: verify that the first frame of every tracklet exists.
        name: dataset name in summaries (the synthetic set uses this reader too).

    Raises:
        ContractError: the layout is wrong, a file is malformed, or frames are missing.
    """
    root = Path(root)
    check_layout(root)
    info = root / "info"
    train_rows = _read_tracks(info / "track_train_info.txt")
    test_rows = _read_tracks(info / "track_test_info.txt")
    query_tokens = " ".join(_read_lines(info / "query_IDX.txt")).split()
    try:
        query_idx = [int(t) - 1 for t in query_tokens]
    except ValueError:
        raise ContractError(f"{info / 'query_IDX.txt'}: expected 1-based integer row numbers") from None
    if any(not 0 <= q < len(test_rows) for q in query_idx):
        raise ContractError(f"{info / 'query_IDX.txt'}: a row number is outside 1..{len(test_rows)}")
    pid_map = {pid: i for i, pid in enumerate(sorted({r[3] for r in train_rows}))}
    train = _tracklets(root, "Train", _read_lines(info / "train_name.txt"), train_rows, pid_map, min_seq_len)
    test_names = _read_lines(info / "test_name.txt")
    query_set = set(query_idx)
    query = _tracklets(root, "Test", test_names, [test_rows[i] for i in query_idx], None, min_seq_len)
    gallery = _tracklets(root, "Test", test_names, [r for i, r in enumerate(test_rows) if i not in query_set],
                         None, min_seq_len)
    if check_frames:
        for t in (*train, *query, *gallery):
            if not Path(t.frames[0]).is_file():
                raise ContractError(f"HITSZ-VCM frame missing: {t.frames[0]} (expected layout: {LAYOUT})")
    kept_pids = {t.pid for t in train}
    if len(kept_pids) != len(pid_map):
        # identities whose every tracklet was too short: relabel densely so classifiers stay 0..N-1
        remap = {p: i for i, p in enumerate(sorted(kept_pids))}
        train = [Tracklet(t.frames, remap[t.pid], t.camid, t.modality) for t in train]
    ds = VVIDataset(name=name, train=tuple(train), ir_query=tuple(query), rgb_gallery=tuple(gallery),
                    rgb_query=tuple(gallery), ir_gallery=tuple(query), num_train_pids=len(kept_pids),
                    num_cameras=num_cameras)
    log.info("loaded %s\n%s", root, ds.summary())
    return ds
