"""Weights the project trained itself and ships (small enough to commit; see README.md here)."""

from pathlib import Path

_HERE = Path(__file__).resolve().parent

#: The tiny X-ReID (random init) trained on the project's synthetic RGB+thermal data: the default
#: before the ImageNet MobileNetV2 model; kept for tests and for galleries built with it.
TINY_CHECKPOINT = _HERE / "xreid-tiny-synth.pt"

#: The default of replay, demo, re-ID workers, search and serve when no checkpoint is configured:
#: X-ReID on an ImageNet MobileNetV2 trunk, fine-tuned on the synthetic data (card: README.md here).
DEFAULT_CHECKPOINT = _HERE / "xreid-mnv2-synth.pt"
