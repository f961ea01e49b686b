"""Snap the network's mask edges to the frame's edges (a fast guided filter).

The network's finest features have stride 4 at its working size (240p by default), so its mask
edges are smooth curves about 8 pixels coarse on a 480p frame, while the object's true edge is
where the frame's intensity changes. A guided filter (He, Sun and Tang) makes the probability
map locally a linear function of the frame's intensity, ``q = a * I + b``, fitted over a small
window to the network's probabilities: inside a window that straddles the object's edge, the
fitted map follows the frame's edge. The fast variant (He and Sun, 2015) fits ``a`` and ``b`` at
the network's working size, where the probabilities are, and applies them to the full-resolution
frame; it costs little more than the bilinear upsampling it replaces.

The refined probabilities only decide the written label map: what is fed back through time
is the network's own prediction, so the tracker's recurrence is the one it was trained with.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

EDGE_EPS = 1e-3
"""The guided filter's regulariser on [0, 1] intensities: a window whose intensity varies less
(standard deviation under about 0.03) keeps the network's probability rather than an edge."""

# ITU-R BT.601 luma weights: the guide is the frame's intensity.
_LUMA = (0.299, 0.587, 0.114)


def luma(image: Tensor) -> Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> (..., 1, H, W) intensity."""
    r, g, b = image.unbind(-3)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(-3)


def box_mean(x: Tensor, radius: int) -> Tensor:
    """Mean over the (2r+1) x (2r+1) window around each pixel of (N, C, H, W), clipped at the
    borders (the mean of the pixels inside the image), as two 1-D passes."""
    k = 2 * radius + 1
    x = F.avg_pool2d(x, (k, 1), stride=1, padding=(radius, 0), count_include_pad=False)
    return F.avg_pool2d(x, (1, k), stride=1, padding=(0, radius), count_include_pad=False)


def guided_upsample(
    probs: Tensor, guide_low: Tensor, guide_full: Tensor, radius: int, eps: float
) -> Tensor:
    """Fast guided filter: (C, h, w) probabilities at the working size -> (C, H, W) at the guide's.

    ``guide_low`` (1, h, w) is the frame's intensity at the working size, ``guide_full``
    (1, H, W) at the output size; ``radius`` is in working-size pixels and ``eps`` (on [0, 1]
    intensities) is how much intensity variance a window needs before an edge in it is followed
    (flat windows keep the network's probability). Every output channel is a per-pixel affine
    function of the same guide, so channels that sum to 1 still do.
    """
    p = probs.unsqueeze(0).float()
    guide = guide_low.unsqueeze(0).float()
    mean_i = box_mean(guide, radius)
    mean_p = box_mean(p, radius)
    cov_ip = box_mean(guide * p, radius) - mean_i * mean_p
    var_i = box_mean(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    size = guide_full.shape[-2:]
    a = F.interpolate(box_mean(a, radius), size=size, mode="bilinear", align_corners=False)
    b = F.interpolate(box_mean(b, radius), size=size, mode="bilinear", align_corners=False)
    return (a * guide_full.unsqueeze(0).float() + b)[0]
