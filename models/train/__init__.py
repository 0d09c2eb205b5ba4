"""X-ReID training: config tree, losses, optimiser/schedule, the resumable training loop."""

from models.train.config import TrainCfg
from models.train.trainer import Trainer, build_model

__all__ = ["TrainCfg", "Trainer", "build_model"]
