"""The previous frame's fine mask as an input of the upsampler (beyond the paper).

A-GAME feeds the previous mask back only at stride 16, so the upsampler must redraw every
boundary from a coarse grid and the shallow features: at 240p that grid is 15x27 cells, and the
first propagated frame already loses 0.1-0.2 J against simply copying the given mask. Here the
previous frame's object probability, average-pooled to strides 8 and 4, enters the upsampler's
two blending convolutions through convolutions of its own. They start at zero, so a trained
model extended with them is at first the same function, and fine-tuning decides how much of the
previous shape to keep.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PRIOR_STRIDE = 4  # the finest stride the upsampler works at; the prior is kept there


def pool_prior(object_prob: Tensor) -> Tensor:
    """(N, 1, H, W) object probability at full (padded) resolution -> stride 4."""
    x = object_prob if object_prob.dtype == torch.float64 else object_prob.float()
    return F.avg_pool2d(x, kernel_size=PRIOR_STRIDE, stride=PRIOR_STRIDE)


class MaskPrior(nn.Module):
    """Zero-initialised 3x3 convolutions from the previous fine mask to the upsampler's widths."""

    def __init__(self, dim: int):
        super().__init__()
        self.to_s8 = nn.Conv2d(1, dim, kernel_size=3, padding=1)
        self.to_s4 = nn.Conv2d(1, dim, kernel_size=3, padding=1)
        for conv in (self.to_s8, self.to_s4):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, prior4: Tensor) -> tuple[Tensor, Tensor]:
        """(N, 1, H/4, W/4) previous object probability -> additions at s8 and at s4."""
        prior8 = F.avg_pool2d(prior4, kernel_size=2, stride=2)
        return (
            self.to_s8(prior8.to(self.to_s8.weight.dtype)),
            self.to_s4(prior4.to(self.to_s4.weight.dtype)),
        )
