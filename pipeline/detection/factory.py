"""Detector by name: the one place that maps ``detector.kind`` to a class."""

from __future__ import annotations

from pipeline.config.settings import DetectorCfg
from pipeline.detection.base import Detector


def create_detector(cfg: DetectorCfg) -> Detector:
    """Build the detector ``cfg.kind`` names (``hog``, ``yolo`` or ``heat``).

    Raises:
        WeightsNotFound: yolo weights are missing and cannot be downloaded.
        ConfigError: the weights file is not a loadable model.
    """
    if cfg.kind == "hog" and cfg.motion.enabled:
        from pipeline.detection.hog_motion import (
            MotionHogDetector,  # the offline default: HOG where the camera sees motion
        )

        return MotionHogDetector(cfg)
    if cfg.kind == "hog":
        from pipeline.detection.hog import HogDetector

        return HogDetector(cfg)
    if cfg.kind == "heat":
        from pipeline.detection.heat import HeatDetector  # thermal frames: warm blobs shaped like people (offline)

        return HeatDetector(cfg)
    from pipeline.detection.yolo import YoloDetector

    return YoloDetector(cfg)
