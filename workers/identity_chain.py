"""Wiring of the identity half of the pipeline (re-ID stage → matcher stage → report) for commands.

``replay`` and ``demo`` call ``load_encoder`` and ``identity_stages`` before the replay and
``write_identities`` after it; ``search`` uses ``load_encoder`` for ``--image``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

UNTRAINED_ID = "xreid_tiny@untrained-seed0"


def load_encoder(checkpoint: str | None, device: str = "auto", amp: bool = True,
                 camera_index: dict[str, int] | None = None, untrained: bool = False) -> Any:
    """The X-ReID encoder of ``checkpoint``; None: the committed default model (``models.weights``).

    Args:
        camera_index: ``reid.camera_index`` (cameras that were in training), expanded here.
        untrained: with no checkpoint, a random-initialised tiny model instead (plumbing only, loudly).
    """
    from models.errors import WeightsNotFound
    from models.weights import DEFAULT_CHECKPOINT
    from pipeline.reid.camera_index import expand_camera_index

    index = expand_camera_index(camera_index or {})
    if checkpoint is None and not untrained and DEFAULT_CHECKPOINT.is_file():
        log.info("re-ID model: the committed default %s", DEFAULT_CHECKPOINT.name)
        checkpoint = str(DEFAULT_CHECKPOINT)
    if checkpoint is not None:
        from models.xreid.encoder import ReidEncoder

        if not Path(checkpoint).is_file():
            raise WeightsNotFound(f"re-ID checkpoint {checkpoint} not found (train one with `xreid train`)")
        return ReidEncoder.from_checkpoint(checkpoint, device=device, amp=amp, camera_index=index)
    import torch

    from models.xreid import create_model
    from models.xreid.encoder import ReidEncoder

    log.warning("re-ID with an UNTRAINED xreid_tiny model: identities will not be meaningful (pass --checkpoint PATH)")
    torch.manual_seed(0)
    return ReidEncoder.from_model(create_model("xreid_tiny"), UNTRAINED_ID, device="cpu", camera_index=index)


def align_clip_length(cfg: Any, seq_len: int) -> Any:
    """The config with ``clips.seq_len`` set to the encoder's T (clips of another T are poison)."""
    if cfg.clips.seq_len == seq_len:
        return cfg
    log.info("clips.seq_len %d -> %d to match the re-ID model", cfg.clips.seq_len, seq_len)
    clips = dataclasses.replace(cfg.clips, seq_len=seq_len, max_candidates=max(cfg.clips.max_candidates, seq_len))
    return dataclasses.replace(cfg, clips=clips)


def identity_stages(cfg: Any, encoder: Any, bus: Any, store: Any, out_dir: str | Path | None = None) -> list[Any]:
    """The re-ID and matcher stages on ``bus``/``store``, in the order the replay must drain them."""
    from pipeline.matcher.matcher import Matcher
    from pipeline.matcher.stage import MatcherStage
    from pipeline.reid.stage import ReidStage
    from pipeline.store.crops import CropKeeper

    crops = CropKeeper.for_store(store.location, cfg.store.keep_crops, cfg.store.crops_dir, out_dir)
    # embedded mode: the re-ID stage keeps several crops per clip (the matcher only sees one thumbnail)
    return [ReidStage(bus, encoder, cfg.reid, crops=crops), MatcherStage(bus, store, Matcher(cfg.matcher), cfg.matcher)]


def write_identities(store: Any, out_dir: str | Path, run_id: str, stages: list[Any]) -> dict[str, Any]:
    """identities.json + contact sheets for the identities this run touched; returns a summary."""
    from pipeline.replay.report import write_report

    doc = write_report(store, out_dir, track_uid_like=f"%-{run_id}-%")
    reid = stages[0].counters.snapshot()
    return {"identities": doc["n_identities"], "cross_modal": doc["cross_modal"], "multi_camera": doc["multi_camera"],
            "tracks_linked": doc["n_tracks"], "clips_embedded": reid["published"],
            "clips_dead_lettered": reid["dead_lettered"], "model_id": stages[0].encoder.model_id}
