"""The A-GAME heads around the appearance module: mask propagation, fusion and upsampling.

Each head splits its work into an object-independent part (computed once per frame from the
backbone features) and a per-object part (run for all objects as one batch). The weights keep the
authors' layout, so a 1x1 conv over a channel concatenation is stored as one conv and applied as a
sum of slices: this is the same function, without copying the frame's features once per object.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _init_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """Kaiming-uniform weights and zero biases, as the authors initialise every head conv."""
    nn.init.kaiming_uniform_(conv.weight, nonlinearity="relu")
    nn.init.zeros_(conv.bias)
    return conv


def conv(in_ch: int, out_ch: int, kernel: int = 3, dilation: int = 1) -> nn.Conv2d:
    return _init_conv(
        nn.Conv2d(in_ch, out_ch, kernel, padding=dilation * (kernel // 2), dilation=dilation)
    )


class MaskPropagation(nn.Module):
    """Mask-propagation module: where was the object, what did it look like in frame 0.

    Input channels of ``conv_in`` in order: current s16 features, first-frame s16 features,
    previous mask (not-object, object), first-frame mask (not-object, object).
    """

    def __init__(self, feat_channels: int, dim: int):
        super().__init__()
        self.feat_channels = feat_channels
        self.conv_in = conv(2 * feat_channels + 4, dim, kernel=1)
        self.pyramid = nn.ModuleList([conv(dim, dim, 3, d) for d in (1, 3, 6)])
        self.conv_out = conv(3 * dim, dim, 3)

    def _weight_slice(self, start: int, stop: int) -> Tensor:
        return self.conv_in.weight[:, start:stop]

    def encode_current(self, s16: Tensor) -> Tensor:
        """The current frame's contribution to ``conv_in`` (once per frame, all objects share it)."""
        c = self.feat_channels
        return F.conv2d(s16, self._weight_slice(0, c).to(s16.dtype))

    def encode_first(self, s16: Tensor) -> Tensor:
        """The first frame's contribution to ``conv_in`` (once per object, kept in its state)."""
        c = self.feat_channels
        return F.conv2d(s16, self._weight_slice(c, 2 * c).to(s16.dtype))

    def forward(
        self, current: Tensor, first: Tensor, prev_mask: Tensor, first_mask: Tensor
    ) -> Tensor:
        c = self.feat_channels
        masks = torch.cat([prev_mask, first_mask], dim=1).to(current.dtype)
        mask_part = F.conv2d(masks, self._weight_slice(2 * c, 2 * c + 4).to(current.dtype))
        bias = self.conv_in.bias.to(current.dtype).view(1, -1, 1, 1)
        x = F.relu(current + first.to(current.dtype) + mask_part + bias)
        x = F.relu(torch.cat([branch(x) for branch in self.pyramid], dim=1))
        return F.relu(self.conv_out(x))


class Fusion(nn.Module):
    """Fuses appearance scores with the propagated mask encoding; predicts the coarse mask.

    ``conv0``'s input is (appearance scores, propagation encoding) in that order. The scores are
    log-densities summed over hundreds of channels (magnitudes in the hundreds or thousands):
    their slice of ``conv0`` runs in float32, since bf16 would round away the score differences
    that matter and fp16 can overflow; the rest runs in the autocast dtype.
    """

    def __init__(self, in_channels: int, fusion_dim: int, encoding_dim: int, coarse_kernel: int):
        super().__init__()
        self.conv0 = conv(in_channels, fusion_dim, 3)
        self.conv1 = conv(fusion_dim, encoding_dim, 3)
        self.predictor = conv(encoding_dim, 2, coarse_kernel)

    def forward(self, scores: Tensor | None, encoding: Tensor | None) -> tuple[Tensor, Tensor]:
        """Returns the mask encoding and the coarse logits (not-object, object)."""
        weight, bias = self.conv0.weight, self.conv0.bias
        k = 0 if scores is None else scores.shape[1]
        x = None
        if encoding is not None:
            x = F.conv2d(encoding, weight[:, k:].to(encoding.dtype), padding=1)
        if scores is not None:
            exact = torch.float64 if scores.dtype == torch.float64 else torch.float32
            with torch.autocast(scores.device.type, enabled=False):
                s = F.conv2d(scores.to(exact), weight[:, :k].to(exact), bias.to(exact), padding=1)
            x = s if x is None else (x.to(exact) + s).to(x.dtype)
        else:
            x = x + bias.to(x.dtype).view(1, -1, 1, 1)
        encoding = F.relu(self.conv1(F.relu(x)))
        return encoding, self.predictor(encoding)


class Upsampler(nn.Module):
    """SharpMask-like refinement: the stride-16 encoding sharpened with s8 then s4 features."""

    def __init__(self, encoding_dim: int, s8_channels: int, s4_channels: int, dim: int):
        super().__init__()
        self.project_s8 = conv(s8_channels, dim, 1)
        self.blend_s8 = conv(dim + encoding_dim, dim, 3)
        self.project_s4 = conv(s4_channels, dim, 1)
        self.blend_s4 = conv(2 * dim, dim, 3)
        self.predictor = conv(dim, 2, 3)

    def project(self, s8: Tensor, s4: Tensor) -> tuple[Tensor, Tensor]:
        """Object-independent projections of the shallow features (once per frame)."""
        return F.relu(self.project_s8(s8)), F.relu(self.project_s4(s4))

    def forward(self, encoding: Tensor, s8p: Tensor, s4p: Tensor) -> Tensor:
        """Returns fine logits at stride 1 (the input image's padded size)."""
        x = F.interpolate(encoding, size=s8p.shape[-2:], mode="bilinear", align_corners=False)
        x = F.relu(self.blend_s8(torch.cat([s8p, x.to(s8p.dtype)], dim=1)))
        x = F.interpolate(x, size=s4p.shape[-2:], mode="bilinear", align_corners=False)
        x = F.relu(self.blend_s4(torch.cat([s4p, x], dim=1)))
        x = self.predictor(x)
        return F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
