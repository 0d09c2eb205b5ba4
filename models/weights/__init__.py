"""Weights the project trained itself and ships (small enough to commit; see README.md here)."""

from pathlib import Path

#: The tiny X-ReID trained on the project's synthetic RGB+thermal data: the default of replay,
#: demo and re-ID workers when no checkpoint is configured.
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "xreid-tiny-synth.pt"
