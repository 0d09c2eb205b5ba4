"""X-ReID: video visible-infrared person re-ID on a CLIP ViT (AAAI 2026), our implementation.

Build with ``create_model``, save/load with ``save_checkpoint``/``load_checkpoint``, load the
reference repository's checkpoints with ``load_reference_checkpoint``, and embed clips of crops
with ``ReidEncoder``. See models/xreid/README.md.
"""

from models.xreid.checkpoint import load_checkpoint, save_checkpoint
from models.xreid.config import XReIDCfg
from models.xreid.encoder import ReidEncoder
from models.xreid.model import XReID
from models.xreid.ref_keys import load_reference_checkpoint
from models.xreid.registry import create_model, list_models

__all__ = [
    "ReidEncoder",
    "XReID",
    "XReIDCfg",
    "create_model",
    "list_models",
    "load_checkpoint",
    "load_reference_checkpoint",
    "save_checkpoint",
]
