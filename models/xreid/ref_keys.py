"""Load the reference repository's checkpoints (AsuradaYuci/X-ReID) through a key-mapping table.

The reference saves ``model.state_dict()`` of its ``build_transformer`` (``make_model_clipreid.py``),
sometimes with a DDP ``module.`` prefix. ``REFERENCE_KEY_MAP`` below is the whole translation: each
row maps a reference key prefix to ours (the rest of the key is kept, except inside the MII
cross-attention blocks, whose leaf names are translated by ``BLOCK_LEAF_MAP``). Rows whose target is
``None`` hold tensors the reference builds but its forward never reads; they are reported and
skipped. ``OURS_ONLY`` lists our tensors the reference has no counterpart for.

| reference prefix                             | ours                                   |
|----------------------------------------------|----------------------------------------|
| image_encoder.                               | backbone.visual.                       |
| cv_embed                                     | camera_embed                           |
| bn_feat_temp. / bn_proj_temp.                | clip_head.seq_norms.0. / .1.           |
| bn_feat_frame. / bn_proj_frame.              | clip_head.frame_norms.0. / .1.         |
| classifier_clip_temp. / classifier_clip_frame. | clip_head.seq_classifier. / frame_classifier. |
| TSM_space.Reconstuct_shift.Rotation.         | short_term.blocks.0.                   |
| TSM_space.Reconstuct_shift2.Rotation.        | short_term.blocks.1.                   |
| bn_TSM_tp0. / bn_TSM_frame0.                 | short_term_head.seq_norms.0. / frame_norms.0. |
| classifier_TSM_tp0.                          | short_term_head.seq_classifier.        |
| classifier_TSM_frame0.                       | short_term_head.frame_classifier. (unused by the reference: it scores frames with classifier_TSM_tp0) |
| TSM_temp.Reconstuct_shift.Rotation.          | long_term.block. (built, never called by the reference) |
| bn_TSM_tp1. / bn_TSM_frame1.                 | long_term_head.seq_norms.0. / frame_norms.0. (unused) |
| classifier_TSM_tp1. / classifier_TSM_frame1. | long_term_head.seq_classifier. / frame_classifier. (unused) |
| bottleneck_local.                            | None (built, never used)               |

Inside a block: ``norm1``->``norm_query``, ``attn.normy``->``attn.key_norm``, ``attn.q_``->
``attn.query``, ``attn.k_``->``attn.key``, ``attn.v_``->``attn.value``, ``attn.proj``->
``attn.out_proj``, ``norm2``->``norm_mlp``, ``mlp.fc1``/``mlp.fc2`` unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from models.errors import ContractError

log = logging.getLogger(__name__)

REFERENCE_KEY_MAP: tuple[tuple[str, str | None], ...] = (
    ("image_encoder.", "backbone.visual."),
    ("cv_embed", "camera_embed"),
    ("bn_feat_temp.", "clip_head.seq_norms.0."),
    ("bn_proj_temp.", "clip_head.seq_norms.1."),
    ("bn_feat_frame.", "clip_head.frame_norms.0."),
    ("bn_proj_frame.", "clip_head.frame_norms.1."),
    ("classifier_clip_temp.", "clip_head.seq_classifier."),
    ("classifier_clip_frame.", "clip_head.frame_classifier."),
    ("TSM_space.Reconstuct_shift.Rotation.", "short_term.blocks.0."),
    ("TSM_space.Reconstuct_shift2.Rotation.", "short_term.blocks.1."),
    ("bn_TSM_tp0.", "short_term_head.seq_norms.0."),
    ("bn_TSM_frame0.", "short_term_head.frame_norms.0."),
    ("classifier_TSM_tp0.", "short_term_head.seq_classifier."),
    ("classifier_TSM_frame0.", "short_term_head.frame_classifier."),
    ("TSM_temp.Reconstuct_shift.Rotation.", "long_term.block."),
    ("bn_TSM_tp1.", "long_term_head.seq_norms.0."),
    ("bn_TSM_frame1.", "long_term_head.frame_norms.0."),
    ("classifier_TSM_tp1.", "long_term_head.seq_classifier."),
    ("classifier_TSM_frame1.", "long_term_head.frame_classifier."),
    ("bottleneck_local.", None),
)

BLOCK_LEAF_MAP: tuple[tuple[str, str], ...] = (
    ("norm1.", "norm_query."),
    ("attn.normy.", "attn.key_norm."),
    ("attn.q_.", "attn.query."),
    ("attn.k_.", "attn.key."),
    ("attn.v_.", "attn.value."),
    ("attn.proj.", "attn.out_proj."),
    ("norm2.", "norm_mlp."),
    ("mlp.fc1.", "mlp.fc1."),
    ("mlp.fc2.", "mlp.fc2."),
)

# ours, not in the reference: which training cameras saw which modality (default: all saw both,
# true of HITSZ-VCM, whose 12 cameras each record RGB and IR)
OURS_ONLY = ("camera_modalities",)


def map_reference_key(key: str) -> str | None:
    """Our state-dict key for a reference key; None for tensors the reference never uses.

    Raises:
        ContractError: the key matches no row of the table.
    """
    key = key.removeprefix("module.")
    for ref_prefix, ours in REFERENCE_KEY_MAP:
        if key == ref_prefix or key.startswith(ref_prefix):
            if ours is None:
                return None
            rest = key[len(ref_prefix):]
            if ours.endswith("block.") or ".blocks." in ours:
                for ref_leaf, our_leaf in BLOCK_LEAF_MAP:
                    if rest.startswith(ref_leaf):
                        rest = our_leaf + rest[len(ref_leaf):]
                        break
                else:
                    raise ContractError(f"reference key {key!r}: unknown MII block leaf {rest!r}")
            return ours + rest
    raise ContractError(f"reference key {key!r} is not in the key-mapping table")


def is_reference_state(state: dict[str, Any]) -> bool:
    """True for a reference X-ReID state dict (has ``cv_embed`` / ``image_encoder.*``)."""
    keys = [k.removeprefix("module.") for k in state]
    return "cv_embed" in keys and any(k.startswith("image_encoder.") for k in keys)


@dataclass
class ReferenceLoadReport:
    """What loading a reference state dict did: every key is in exactly one list."""

    loaded: dict[str, str] = field(default_factory=dict)  # reference key -> our key
    skipped: list[str] = field(default_factory=list)  # reference keys with no use here


def reference_cfg_overrides(state: dict[str, Tensor]) -> dict[str, Any]:
    """Config values a reference state dict implies: cameras, classes, reference forward."""
    keys = {k.removeprefix("module."): v for k, v in state.items()}
    overrides: dict[str, Any] = {
        "camera_num": int(keys["cv_embed"].shape[0]),
        "mii_long_term": "off",  # the reference forward never calls TSM_temp
        "mii_cross_modality": False,  # not in the reference
        "share_frame_classifier": True,
    }
    if "classifier_clip_temp.weight" in keys:
        overrides["num_classes"] = int(keys["classifier_clip_temp.weight"].shape[0])
    return overrides


def load_reference_state(model, state: dict[str, Tensor]) -> ReferenceLoadReport:
    """Copy a reference state dict into ``model`` (an ``XReID``), strictly.

    Every tensor of ``model`` except ``OURS_ONLY`` must receive one, with the same shape.
    Reference tensors without a place in ``model`` (unused ones, classifiers when the model has
    ``num_classes=0``, the long-term module when it is off) are skipped and reported.

    Raises:
        ContractError: an unknown reference key, a shape mismatch, or a model tensor left unset.
    """
    ours = model.state_dict()
    report = ReferenceLoadReport()
    mapped: dict[str, Tensor] = {}
    for ref_key, value in state.items():
        target = map_reference_key(ref_key)
        if target is None or target not in ours:
            report.skipped.append(ref_key)
            continue
        if tuple(ours[target].shape) != tuple(value.shape):
            raise ContractError(f"{ref_key} -> {target}: shape {tuple(value.shape)} != ours {tuple(ours[target].shape)}")
        mapped[target] = value
        report.loaded[ref_key] = target
    missing = sorted(set(ours) - set(mapped) - set(OURS_ONLY))
    if missing:
        raise ContractError(f"reference checkpoint leaves {len(missing)} tensors unset, e.g. {missing[:5]}")
    model.load_state_dict(mapped, strict=False)
    if report.skipped:
        log.info("reference load skipped %d unused tensors: %s", len(report.skipped), report.skipped[:8])
    return report


def load_reference_checkpoint(path: str | Path, name: str = "xreid_vitb16", **overrides: Any):
    """Build our model from a reference checkpoint file, configured to reproduce its forward.

    Args:
        path: the reference's saved ``state_dict`` (``.pth``/``.pth.tar``; a dict holding
            ``state_dict`` is accepted too).
        name: registry config the checkpoint was trained with.
        **overrides: further config changes (e.g. ``input_hw`` if trained at another size).
    """
    from models.xreid.backbone import read_clip_weights
    from models.xreid.checkpoint import content_hash
    from models.xreid.registry import create_model

    state = read_clip_weights("", str(path))
    if not is_reference_state(state):
        raise ContractError(f"{path} is not a reference X-ReID checkpoint (no cv_embed / image_encoder.*)")
    model = create_model(name, **{**reference_cfg_overrides(state), **overrides})
    load_reference_state(model, state)
    model.model_id = f"{model.cfg.name}.ref-{content_hash(model.cfg.to_dict(), model.state_dict())[:12]}"
    return model.eval()
