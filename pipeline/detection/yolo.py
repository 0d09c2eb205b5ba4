"""Ultralytics YOLO people detector (any weights name or path; person class only).

Weights resolve like ultralytics does: an existing path, then ultralytics' ``weights_dir``; an
unknown name is downloaded by ultralytics only when the machine is online. Offline and missing is
``WeightsNotFound`` naming the offline fallback (``--detector hog``), never a hang or a traceback.
A model YAML (``yolo11n.yaml``) builds a randomly initialised network: useful for tests, useless
for detection.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from models.errors import ConfigError, WeightsNotFound

from ..settings import DetectorCfg
from .base import Detections, as_bgr

log = logging.getLogger(__name__)

PERSON_CLASS = 0  # COCO


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
                              f"pass --weights PATH to a local .pt file or use --detector hog")
    return weights


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
            raise WeightsNotFound(f"YOLO weights '{cfg.weights}': {e}; use --detector hog offline") from None
        except (RuntimeError, ValueError, KeyError, TypeError) as e:  # ultralytics: TypeError for a corrupt file
            reason = str(e).splitlines()[0].replace("ERROR ❌️ ", "")
            raise ConfigError(f"cannot load YOLO model '{cfg.weights}': {reason}") from None
        names = getattr(self._model, "names", {}) or {}
        self._person = next((int(k) for k, v in names.items() if str(v) == "person"), PERSON_CLASS)
        log.info("yolo model %s loaded (person class %d, device %s)", source, self._person, cfg.device)

    def detect(self, image: np.ndarray) -> Detections:
        bgr = as_bgr(image)
        result = self._model.predict(bgr, conf=self.cfg.conf, iou=self.cfg.nms_iou, imgsz=self.cfg.imgsz,
                                     classes=[self._person], device=self.cfg.device, verbose=False)[0]
        return Detections.from_ultralytics(result.boxes).clipped(bgr.shape[1], bgr.shape[0])
