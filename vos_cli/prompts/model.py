"""The mask maker's network: a box crop and click maps in, the object's mask logits out.

The crop around a box (enlarged by ``context``) is resampled to ``crop_size`` squared and runs
through EfficientNet-Lite0 (ImageNet init, late stages fine-tuned). The prompt (box, clicks and the
previous mask) enters *after* the backbone, SAM-style: a small convolutional prompt encoder turns
its maps into features at strides 2, 4, 8 and 16 that the decoder concatenates at each scale. So
the backbone features of a crop are computed once and every further click only runs the decoder
(:meth:`MaskMakerNet.decode`), which is what makes interactive refinement and the iterative
training cheap.

Prompt maps (``PROMPT_CHANNELS``), all ``crop_size`` squared:

0. the box: 1 inside it, 0 outside (all 0 for an object given by clicks alone),
1. positive clicks, 2. negative clicks: Gaussian bumps (see :func:`vos_cli.prompts.clicks.click_maps`),
3. the previous mask's probability (0 without one), 4. 1 when a previous mask is given, else 0.

Decoder: stride 16 -> 8 -> 4 -> 2 with skip connections from the backbone (blocks 15, 4, 2, 0),
one logit map at stride 2, upsampled bilinearly to the crop.

Weights file (``torch.save``, loads with ``weights_only=True``)::

    {"format": "vos-maskmaker", "version": 1, "config": MaskMakerConfig.to_dict(),
     "state_dict": {...float16...}, "meta": {...}}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vos_cli.errors import VosError
from vos_cli.model.backbones import LiteBackbone, build_backbone

FORMAT = "vos-maskmaker"
VERSION = 1
PROMPT_CHANNELS = 5


@dataclass
class MaskMakerConfig:
    """The network's shape and the geometry it was trained with (saved in its weights file)."""

    crop_size: int = 320
    """Side of the square the crop is resampled to (a multiple of 16)."""
    context: float = 1.4
    """The crop is the box enlarged this many times about its centre."""
    max_aspect: float = 2.0
    """The crop's shorter side is grown until long / short is at most this."""
    click_sigma: float = 6.0
    """Width of a click's Gaussian bump, in crop pixels."""
    train_from: str = "blocks.8"
    """First fine-tuned backbone stage (see LiteBackbone); earlier ones stay ImageNet's."""
    dim16: int = 128
    dim8: int = 64
    dim4: int = 48
    dim2: int = 24
    prompt_dim: int = 32
    train_norm: str = "batch"
    """Decoder normalisation in training: "batch" (the batch's statistics) or "crop" (each
    crop's own, as at inference). Inference always uses the crop's own (:class:`CropNorm`)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MaskMakerConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise VosError(f"unknown mask maker setting {unknown[0]!r}")
        config = cls(**data)
        config.check()
        return config

    def check(self) -> None:
        if self.crop_size <= 0 or self.crop_size % 16:
            raise VosError(
                f"mask maker crop_size must be a positive multiple of 16, got {self.crop_size}"
            )
        if self.context < 1.0:
            raise VosError(f"mask maker context must be at least 1, got {self.context}")
        if self.max_aspect < 1.0:
            raise VosError(f"mask maker max_aspect must be at least 1, got {self.max_aspect}")
        if self.train_norm not in ("batch", "crop"):
            raise VosError(
                f"mask maker train_norm must be 'batch' or 'crop', got {self.train_norm!r}"
            )


class CropNorm(nn.BatchNorm2d):
    """BatchNorm that, outside training, normalises each crop by its own statistics.

    Why: a training batch holds crops at one decoder pass (box alone, or after k clicks, with or
    without a previous mask), and those passes' activations differ widely, so running averages
    over all passes fit none of them: with them a box alone scored mean IoU 0.09 where the crop's
    own statistics give 0.80 (docs/experiments.md, "Mask maker"). Training uses the batch's
    statistics, or with ``per_crop_in_training`` each crop's own, so that training and
    inference normalise alike; the running averages are kept in the file but unused.
    """

    per_crop_in_training = False

    def forward(self, x: Tensor) -> Tensor:
        if self.training and not self.per_crop_in_training:
            return super().forward(x)
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """Convolution, CropNorm, ReLU."""
    pad = dilation * (k - 1) // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=dilation, bias=False),
        CropNorm(cout),
        nn.ReLU(inplace=True),
    )


class _Residual(nn.Module):
    def __init__(self, dim: int, dilation: int) -> None:
        super().__init__()
        self.a = _conv(dim, dim, dilation=dilation)
        self.b = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=dilation, dilation=dilation, bias=False),
            CropNorm(dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.b(self.a(x)))


@dataclass
class CropFeatures:
    """Backbone features of a batch of crops, at strides 16, 8, 4 and 2."""

    s16: Tensor
    s8: Tensor
    s4: Tensor
    s2: Tensor

    def index(self, i: int) -> CropFeatures:
        return CropFeatures(*(t[i : i + 1] for t in (self.s16, self.s8, self.s4, self.s2)))

    def expand(self, n: int) -> CropFeatures:
        return CropFeatures(
            *(t.expand(n, -1, -1, -1) for t in (self.s16, self.s8, self.s4, self.s2))
        )


class MaskMakerNet(nn.Module):
    """``features(crops)`` once per crop, ``decode(features, prompt_maps)`` per prompt."""

    S2_BLOCK = 0

    def __init__(self, config: MaskMakerConfig, backbone_weights: str | Path | None = "imagenet"):
        super().__init__()
        config.check()
        self.config = config
        backbone = build_backbone("lite0", weights=backbone_weights, train_from=config.train_from)
        assert isinstance(backbone, LiteBackbone)
        self.backbone = backbone
        c16, c8, c4 = backbone.channels
        c2 = 16  # block 0's output
        p = config.prompt_dim
        # prompt encoder: full crop -> strides 2, 4, 8, 16
        self.prompt2 = nn.Sequential(_conv(PROMPT_CHANNELS, 16, stride=2), _conv(16, 16))
        self.prompt4 = _conv(16, p, stride=2)
        self.prompt8 = _conv(p, p, stride=2)
        self.prompt16 = _conv(p, p, stride=2)
        d16, d8, d4, d2 = config.dim16, config.dim8, config.dim4, config.dim2
        self.reduce16 = _conv(c16, d16, k=1)
        self.fuse16 = _conv(d16 + p, d16)
        self.context16 = nn.Sequential(_Residual(d16, 2), _Residual(d16, 4))
        self.skip8 = _conv(c8, d8, k=1)
        self.fuse8 = nn.Sequential(_conv(d16 + d8 + p, d8), _conv(d8, d8))
        self.skip4 = _conv(c4, d4, k=1)
        self.fuse4 = nn.Sequential(_conv(d8 + d4 + p, d4), _conv(d4, d4))
        self.skip2 = _conv(c2, d2, k=1)
        self.fuse2 = nn.Sequential(_conv(d4 + d2 + 16, d2), _conv(d2, d2))
        self.head = nn.Conv2d(d2, 1, 1)
        self.aux_head = nn.Conv2d(d8, 1, 1)  # deep supervision at stride 8 (training only)
        for module in self.modules():
            if isinstance(module, CropNorm):
                module.per_crop_in_training = config.train_norm == "crop"

    # ------------------------------------------------------------------------------------------
    def features(self, crops: Tensor) -> CropFeatures:
        """crops: (B, 3, S, S) RGB in [0, 1] -> the backbone's features (no prompt involved)."""
        b = self.backbone
        s2, s4, s8, s16 = b.run_blocks(
            b.body.stem(b.normalize(crops)), (self.S2_BLOCK, b.s4_block, b.s8_block)
        )
        return CropFeatures(s16, s8, s4, s2)

    def decode(self, feats: CropFeatures, prompt: Tensor, aux: bool = False):
        """prompt: (B, PROMPT_CHANNELS, S, S) -> logits (B, 1, S, S) (and stride-8 ones if aux)."""
        p2 = self.prompt2(prompt)
        p4 = self.prompt4(p2)
        p8 = self.prompt8(p4)
        p16 = self.prompt16(p8)
        x = self.fuse16(torch.cat([self.reduce16(feats.s16), p16], 1))
        x = self.context16(x)
        x = _up(x, feats.s8)
        x = self.fuse8(torch.cat([x, self.skip8(feats.s8), p8], 1))
        aux_logits = self.aux_head(x) if aux else None
        x = _up(x, feats.s4)
        x = self.fuse4(torch.cat([x, self.skip4(feats.s4), p4], 1))
        x = _up(x, feats.s2)
        x = self.fuse2(torch.cat([x, self.skip2(feats.s2), p2], 1))
        logits = F.interpolate(
            self.head(x), size=prompt.shape[-2:], mode="bilinear", align_corners=False
        )
        if aux:
            return logits, aux_logits
        return logits

    def forward(self, crops: Tensor, prompt: Tensor) -> Tensor:
        return self.decode(self.features(crops), prompt)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> MaskMakerNet:
        super().train(mode)
        self.backbone.train(mode)  # keeps frozen stages and every BatchNorm in eval mode
        return self


def _up(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


# ----------------------------------------------------------------------------------------------
# weights files


def weights_dict(
    net: MaskMakerNet, meta: dict[str, Any] | None = None, half: bool = True
) -> dict[str, Any]:
    """The network as a weights file's dict; ``half``: floating tensors stored as float16."""
    state = {}
    for key, value in net.state_dict().items():
        value = value.detach().cpu().clone()
        if half and value.is_floating_point():
            value = value.half()
        state[key] = value
    return {
        "format": FORMAT,
        "version": VERSION,
        "config": net.config.to_dict(),
        "state_dict": state,
        "meta": dict(meta or {}),
    }


def save_maskmaker(
    net: MaskMakerNet, path: str | Path, meta: dict[str, Any] | None = None, half: bool = True
) -> None:
    """Write a weights file atomically (float16 tensors unless ``half=False``)."""
    from vos_cli.model.factory import atomic_save

    atomic_save(weights_dict(net, meta, half), path)


def read_maskmaker_file(path: str | Path) -> dict[str, Any]:
    """A mask-maker weights dict from a weights file or a mask-maker training checkpoint."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise VosError(f"mask maker weights file not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise VosError(f"cannot read mask maker weights {path}: {first}") from None
    if isinstance(data, dict) and isinstance(data.get("weights"), dict):
        data = data["weights"]  # a training checkpoint
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise VosError(
            f"{path} is not a mask maker weights file (vos mask and --box need one made by "
            "vos train with a mask-maker config; the tracker's weights go to --weights)"
        )
    if data.get("version") != VERSION:
        raise VosError(f"{path}: unsupported mask maker weights version {data.get('version')!r}")
    return data


def load_maskmaker(path: str | Path) -> tuple[MaskMakerNet, dict[str, Any]]:
    """The network of a weights file (float32, eval mode) and the file's metadata."""
    data = read_maskmaker_file(path)
    config = MaskMakerConfig.from_dict(data["config"])
    net = MaskMakerNet(config, backbone_weights=None)
    state = {k: v.float() if v.is_floating_point() else v for k, v in data["state_dict"].items()}
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        key = (missing or unexpected)[0]
        what = "missing" if missing else "unexpected"
        raise VosError(f"{path}: {what} key {key!r}; the file does not fit this mask maker")
    for key, value in state.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise VosError(
                f"{path}: {key} has shape {tuple(value.shape)}, expected {tuple(own[key].shape)}"
            )
    net.load_state_dict(state)
    net.eval()
    return net, dict(data.get("meta", {}))
