"""Ultralytics YOLO people detector (any weights name or path; person class only).

Weights resolve like ultralytics does: an existing path, then ultralytics' ``weights_dir``; an
unknown name is downloaded by ultralytics only when the machine is online. Offline and missing is
``WeightsNotFound`` naming the offline fallback (``--detector hog``), never a hang or a traceback.
A model YAML (``yolo11n.yaml``) builds a randomly initialised network: useful for tests, useless
for detection. Models trained on other label sets say which of their classes are people with
``detector.person_classes`` (e.g. a fall detector's ``[Normal, Fall]``); a model with none of the
named classes is a clear error listing the classes it has.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from models.errors import ConfigError, WeightsNotFound
from pipeline.config.settings import DetectorCfg
from pipeline.detection.base import Detections, as_bgr

log = logging.getLogger(__name__)

COCO_PERSON = 0
OFFLINE_ALTERNATIVES = "--detector hog (offline, any camera) or --detector heat (thermal cameras)"


def resolve_weights(weights: str) -> str:
    """Local path of ``weights``, or the name itself when ultralytics may fetch it (online).

    Raises:
        WeightsNotFound: the weights are not on this machine and it cannot download them.
    """
    from ultralytics.utils import SETTINGS, is_online

    path = Path(weights).expanduser()
    if path.suffix in (".yaml", ".yml"):
        return str(path)  # architecture only: ultralytics builds it from its bundled configs
    if path.is_file():
        return str(path)
    cached = Path(SETTINGS["weights_dir"]) / path.name
    if cached.is_file():
        return str(cached)
    if path.parent != Path(".") or not is_online():
        raise WeightsNotFound(f"YOLO weights '{weights}' not found locally and cannot be downloaded (offline); "
                              f"pass --weights PATH to a local .pt file or use {OFFLINE_ALTERNATIVES}")
    return weights


def person_class_ids(names: dict[int, str], wanted: tuple[str, ...], weights: str) -> list[int]:
    """Ids of the model classes named in ``wanted`` (all of them count as ``person``).

    Raises:
        ConfigError: the model has none of them.
    """
    ids = sorted(int(k) for k, v in names.items() if str(v) in wanted)
    if not ids and "person" in wanted and all(str(v) == str(k) for k, v in names.items()):
        return [COCO_PERSON]   # unnamed classes (a model built from YAML): COCO's layout, person first
    if not ids:
        have = ", ".join(str(v) for v in names.values()) or "none"
        raise ConfigError(f"YOLO model '{weights}' has no class named {', '.join(wanted)} (its classes: {have}); "
                          f"set detector.person_classes to the ones that are people")
    return ids


class YoloDetector:
    """Person boxes from an ultralytics YOLO model."""

    name = "yolo"

    def __init__(self, cfg: DetectorCfg) -> None:
        from ultralytics import YOLO

        self.cfg = cfg
        source = resolve_weights(cfg.weights)
        try:
            self._model = YOLO(source, task="detect")
        except FileNotFoundError as e:
            raise WeightsNotFound(f"YOLO weights '{cfg.weights}': {e}; offline, use {OFFLINE_ALTERNATIVES}") from None
        except (RuntimeError, ValueError, KeyError, TypeError) as e:  # ultralytics: TypeError for a corrupt file
            reason = str(e).splitlines()[0].replace("ERROR ❌️ ", "")
            raise ConfigError(f"cannot load YOLO model '{cfg.weights}': {reason}; offline alternatives: "
                              f"{OFFLINE_ALTERNATIVES}") from None
        self._person = person_class_ids(getattr(self._model, "names", {}) or {}, cfg.person_classes, cfg.weights)
        log.info("yolo model %s loaded (person classes %s, device %s)", source, self._person, cfg.device)

    def detect(self, image: np.ndarray) -> Detections:
        bgr = as_bgr(image)
        result = self._model.predict(bgr, conf=self.cfg.conf, iou=self.cfg.nms_iou, imgsz=self.cfg.imgsz,
                                     classes=self._person, device=self.cfg.device, verbose=False)[0]
        return Detections.from_ultralytics(result.boxes).clipped(bgr.shape[1], bgr.shape[0])
