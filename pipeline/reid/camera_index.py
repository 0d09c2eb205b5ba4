"""Which learned X-ReID camera embedding a clip gets: one per camera × modality.

X-ReID adds a learned camera embedding to every frame (XREID.md). A day/night camera is two
cameras to the model: by day it sees colour, by night near-infrared, and the embedding learned
for one says nothing about the other. So the re-ID stage names a clip's camera to the encoder as
``camera_key(camera_id, clip.modality)`` (``"gate:ir"``), and the configured mapping
(``reid.camera_index``) is expanded to those keys:

* ``"gate:ir": 7`` — the infrared side of camera ``gate`` was training camera 7;
* ``"lobby": 3`` — a fixed-modality camera; the plain key covers both of its keys (a
  ``camera:modality`` entry for the same camera wins).

A key missing from the mapping is an unseen camera: the encoder gives it the mean learned
embedding of the clip's modality (or zero, per the model config), as XREID.md prescribes for
deployed cameras that were not in training.
"""

from __future__ import annotations

from collections.abc import Mapping

from models.errors import ConfigError
from pipeline.bus.messages import MODALITIES


def camera_key(camera_id: str, modality: str) -> str:
    """The encoder's name for ``camera_id`` when it sends ``modality`` frames."""
    return f"{camera_id}:{modality}"


def expand_camera_index(mapping: Mapping[str, int]) -> dict[str, int]:
    """``reid.camera_index`` (plain or ``camera:modality`` keys) → ``{camera:modality: index}``.

    Raises:
        ConfigError: a key names an unknown modality, or an index is negative.
    """
    out: dict[str, int] = {}
    for key, index in mapping.items():
        if not isinstance(index, int) or index < 0:
            raise ConfigError(f"reid.camera_index[{key!r}] must be a training camera index >= 0, got {index!r}")
        camera, sep, modality = key.partition(":")
        if not camera:
            raise ConfigError(f"reid.camera_index key {key!r} has no camera id")
        if sep and modality not in MODALITIES:
            raise ConfigError(f"reid.camera_index key {key!r}: modality must be one of {MODALITIES}")
    for key, index in mapping.items():          # plain keys first, so specific ones override
        if ":" not in key:
            for m in MODALITIES:
                out[camera_key(key, m)] = index
    for key, index in mapping.items():
        if ":" in key:
            out[key] = index
    return out
