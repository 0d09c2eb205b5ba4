"""Our checkpoint format: config + state dict + ``model_id``, loaded with ``weights_only=True``.

``model_id`` is ``{cfg.name}.{sha256[:16]}`` of the checkpoint's content (config JSON, then every
state-dict entry's name, dtype, shape and bytes in sorted order). It names the vectors a model
produces: vectors of different models never meet in one gallery. Loading recomputes the hash and
refuses a file whose content no longer matches its ``model_id``; ``load_checkpoint(sha256=...)``
additionally pins the exact file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from models.config_base import validate
from models.errors import ContractError, WeightsNotFound
from models.xreid.config import XReIDCfg

log = logging.getLogger(__name__)

FORMAT = "xreid-checkpoint"
VERSION = 1


def content_hash(cfg_dict: dict[str, Any], state: dict[str, Tensor]) -> str:
    """sha256 hex digest of a config dict and a state dict (order-independent)."""
    h = hashlib.sha256(json.dumps(cfg_dict, sort_keys=True).encode())
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_model_id(cfg_dict: dict[str, Any], state: dict[str, Tensor]) -> str:
    return f"{cfg_dict['name']}.{content_hash(cfg_dict, state)[:16]}"


def save_checkpoint(model, path: str | Path, extra: dict[str, Any] | None = None) -> str:
    """Write ``model`` (an ``XReID``) to ``path`` atomically; returns its ``model_id``.

    Args:
        extra: plain python data (numbers, strings, lists, dicts, tensors) kept beside the
            weights, e.g. training epoch or dataset name.
    """
    cfg_dict = model.cfg.to_dict()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    model_id = make_model_id(cfg_dict, state)
    payload = {"format": FORMAT, "version": VERSION, "config": cfg_dict, "state_dict": state,
               "model_id": model_id, "extra": extra or {}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)  # a crash never leaves a half-written checkpoint under the name
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    model.model_id = model_id
    log.info("saved checkpoint %s model_id=%s", path, model_id)
    return model_id


def inference_copy(model):
    """The part of a trained ``XReID`` that makes embeddings: no ID classifiers, CPC or CII.

    Its embeddings equal the trained model's bit for bit (those parts never touch the eval path);
    the file is about a third smaller. The config records ``num_classes: 0`` and
    ``mii_cross_modality: false``, so its ``model_id`` differs from the training checkpoint's.
    """
    from models.xreid.model import XReID

    cfg = model.cfg.replace(num_classes=0, mii_cross_modality=False)
    slim = XReID(cfg)
    keep = slim.state_dict()
    slim.load_state_dict({k: v for k, v in model.state_dict().items() if k in keep}, strict=True)
    return slim.eval()


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", sha256: str | None = None) -> dict:
    """Read and verify one of our checkpoint files; returns its payload dict."""
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFound(f"X-ReID checkpoint not found: {path}")
    if sha256 is not None and file_sha256(path) != sha256.lower():
        raise ContractError(f"{path}: sha256 does not match the expected {sha256}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # unpickling errors come in many types; all mean "not our file"
        raise ContractError(f"{path} is not a loadable checkpoint: {type(e).__name__}: {e}") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ContractError(f"{path} is not an xreid checkpoint (reference checkpoints: models.xreid.ref_keys)")
    if payload.get("version") != VERSION:
        raise ContractError(f"{path}: checkpoint version {payload.get('version')} is not supported (want {VERSION})")
    expected = make_model_id(payload["config"], payload["state_dict"])
    if payload.get("model_id") != expected:
        raise ContractError(f"{path}: content hash mismatch (stored {payload.get('model_id')}, computed {expected})")
    return payload


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", sha256: str | None = None):
    """Rebuild an ``XReID`` from one of our checkpoints, in eval mode, ``model_id`` set.

    Raises:
        WeightsNotFound: no file at ``path``.
        ContractError: not our format, or its content does not match its ``model_id`` / ``sha256``.
    """
    from models.xreid.model import XReID

    payload = read_checkpoint(path, map_location, sha256)
    model = XReID(validate(XReIDCfg, payload["config"], f"{path}: config"))
    model.load_state_dict(payload["state_dict"], strict=True)
    model.model_id = payload["model_id"]
    return model.eval()
