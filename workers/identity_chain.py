"""Wiring of the identity half of the pipeline (re-ID stage → matcher stage → report) for commands.

``replay`` and ``demo`` call ``load_encoder`` and ``identity_stages`` before the replay and
``write_identities`` after it; ``search`` uses ``load_encoder`` for ``--image``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
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


def crop_keeper(cfg: Any, location: str, out_dir: str | Path | None = None) -> Any:
    """The store's crop keeper; None when no crop is kept (``store.keep_crops: 0``, ``retention.embeddings_only``).

    Args:
        out_dir: the replay's ``--out``: where a PostgreSQL store's crops go unless ``store.crops_dir`` is set.
    """
    from pipeline.store.crops import CropKeeper

    return None if cfg.retention.embeddings_only else \
        CropKeeper.for_store(location, cfg.store.keep_crops, cfg.store.crops_dir, out_dir)


def keeps_crops(cfg: Any) -> bool:
    """Whether the pipeline keeps crops at all (the eraser's keeper also exists to delete old ones)."""
    return cfg.store.keep_crops > 0 and not cfg.retention.embeddings_only


def privacy_duty(cfg: Any, store: Any, bus: Any, name: str, out_dir: str | Path | None = None) -> Any:
    """Erasures and retention for the store's writer (``pipeline/matcher/privacy.py``).

    Args:
        out_dir: the replay's ``--out`` (its report files and, for a PostgreSQL store, its crops); None: the
            SQLite store's folder, and no report files for a PostgreSQL store (the matcher worker writes none).
    """
    from pipeline.matcher.forget import Eraser
    from pipeline.matcher.privacy import PrivacyDuty
    from pipeline.matcher.retention import RetentionSweep
    from pipeline.store.crops import CropKeeper, crops_root

    # erasure reaches crops kept earlier under another setting too
    crops = crop_keeper(cfg, store.location, out_dir) or (
        CropKeeper(crops_root(store.location, cfg.store.crops_dir, out_dir)) if store.location != ":memory:" else None)
    eraser = Eraser(store, crops, bus, name, reports_dir=out_dir)
    return PrivacyDuty(eraser, RetentionSweep(eraser, cfg.retention))


def sweep_store(cfg: Any, location: str, out_dir: str | Path | None = None) -> Any:
    """One retention sweep of the store at ``location`` (nothing when there is no SQLite file yet); its result."""
    from pipeline.store.base import is_postgres
    from pipeline.store.configured import open_store

    if not is_postgres(location) and not Path(location).is_file():
        return None
    with open_store(location, cfg.store) as store:
        return privacy_duty(cfg, store, None, f"replay-{os.getpid()}", out_dir).sweep.run()


def identity_stages(cfg: Any, encoder: Any, bus: Any, store: Any, privacy: Any = None, hub: Any = None,
                    out_dir: str | Path | None = None) -> list[Any]:
    """The re-ID, matcher and camera-report stages on ``bus``/``store``, in the order the replay must drain them.

    The matcher and the report sink announce their decisions as live events (the store's event log,
    and ``hub``'s sinks when given); run the replay with ``reports_on_bus=True`` so the cameras'
    reports reach the sink.

    Args:
        privacy: the matcher's ``PrivacyDuty`` (erasures requested during the replay, retention).
        out_dir: the replay's ``--out`` (a PostgreSQL store's crops go there unless ``store.crops_dir`` is set).
    """
    from pipeline.matcher.announce import Announcer
    from pipeline.matcher.matcher import Matcher
    from pipeline.matcher.stage import MatcherStage
    from pipeline.matcher.status_sink import CameraStatusSink
    from pipeline.reid.stage import ReidStage

    crops = privacy.eraser.crops if privacy is not None and keeps_crops(cfg) \
        else crop_keeper(cfg, store.location, out_dir)   # one keeper: an erasure stops it keeping the erased tracks' clips
    announcer = Announcer.for_config(cfg.events, store, hub)
    matcher = MatcherStage(bus, store, Matcher(cfg.matcher), cfg.matcher, privacy=privacy,
                           keep_thumbnails=not cfg.retention.embeddings_only, announcer=announcer)
    reports = CameraStatusSink(bus, store, matcher.consumer, announcer=announcer, matcher=lambda: matcher.matcher,
                               end_wait_s=cfg.events.track_end_wait_s)
    # embedded mode: the re-ID stage keeps several crops per clip (the matcher only sees one thumbnail)
    return [ReidStage(bus, encoder, cfg.reid, crops=crops), matcher, reports]


def write_identities(store: Any, out_dir: str | Path, run_id: str, stages: list[Any]) -> dict[str, Any]:
    """identities.json + contact sheets for the identities this run touched; returns a summary."""
    from pipeline.replay.report import write_report

    doc = write_report(store, out_dir, track_uid_like=f"%-{run_id}-%")
    reid = stages[0].counters.snapshot()
    return {"identities": doc["n_identities"], "cross_modal": doc["cross_modal"], "multi_camera": doc["multi_camera"],
            "tracks_linked": doc["n_tracks"], "clips_embedded": reid["published"],
            "clips_dead_lettered": reid["dead_lettered"], "model_id": stages[0].encoder.model_id}
