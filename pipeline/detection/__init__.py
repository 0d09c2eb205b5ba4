"""Person detectors: ``hog`` (OpenCV, offline) and ``yolo`` (ultralytics)."""

from pipeline.detection.base import Detections, Detector, as_bgr, nms
from pipeline.detection.factory import create_detector

__all__ = ["Detections", "Detector", "as_bgr", "create_detector", "nms"]
