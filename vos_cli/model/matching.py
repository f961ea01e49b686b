"""Feature matching to the first and the previous frame: an addition to A-GAME (not in the paper).

The Gaussian mixture summarises each class by a few means and variances; an object with parts
that look unlike each other, or a background with a look-alike, is hard to separate that way.
Nearest-neighbour matching (as in FEELVOS) keeps every reference pixel instead: for each pixel of
the current frame it gives the best cosine similarity to any object pixel and to any background
pixel, globally against the first frame and within a window against the previous frame. The
four maps enter the fusion module through their own convolution, initialised to zero, so a
trained A-GAME model extended with matching starts as exactly the same function and can be
fine-tuned from there.

Shapes: keys (N, D, h, w), unit length over D; reference keys (N, D, P); masks (N, 2, P) as
(not-object, object) soft labels at stride 16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NO_MATCH = -1.0  # similarity reported where a class has no reference pixel at all
NUM_MAPS = 4  # first-frame background/object, previous-frame background/object


def reference_selection(mask: Tensor) -> Tensor:
    """(N, 2, P) soft labels -> (N, 2, P) bool: the pixels each class is matched against.

    A pixel counts for a class where its label is at least 0.5, or, for a class no pixel reaches
    0.5 for (a small object pooled to stride 16), where the label is the class's largest. Labels
    under 0.01 never count, so a lost object has no reference pixels at all.
    """
    threshold = mask.amax(dim=-1, keepdim=True).clamp(max=0.5)
    return (mask >= threshold) & (mask > 0.01)


def window_mask(height: int, width: int, radius: int, device: torch.device) -> Tensor:
    """(P, P) bool: reference pixel j lies within ``radius`` cells (Chebyshev) of pixel i."""
    ys = torch.arange(height, device=device).repeat_interleave(width)
    xs = torch.arange(width, device=device).repeat(height)
    dy = (ys[:, None] - ys[None, :]).abs()
    dx = (xs[:, None] - xs[None, :]).abs()
    return torch.maximum(dy, dx) <= radius


def best_match(
    keys: Tensor, ref_keys: Tensor, ref_mask: Tensor, allowed: Tensor | None = None
) -> Tensor:
    """(N, 2, h, w): per class, the best similarity of each pixel to that class's references.

    ``allowed`` (P_cur, P_ref) restricts which reference pixels each pixel may match (a window).
    """
    n, d, h, w = keys.shape
    sim = torch.bmm(keys.reshape(n, d, h * w).transpose(1, 2), ref_keys)  # (N, P_cur, P_ref)
    selected = reference_selection(ref_mask)  # (N, 2, P_ref)
    maps = []
    for cls in range(2):
        usable = selected[:, cls, None, :]  # (N, 1, P_ref)
        if allowed is not None:
            usable = usable & allowed[None]
        best = sim.masked_fill(~usable, 2.0 * NO_MATCH).amax(dim=-1)
        maps.append(best.clamp_min(NO_MATCH))
    return torch.stack(maps, dim=1).reshape(n, 2, h, w)


class FeatureMatching(nn.Module):
    """Key projection, the four similarity maps, and their (zero-initialised) fusion input."""

    def __init__(self, in_channels: int, dim: int, out_channels: int, window: int = 4):
        super().__init__()
        self.window = window
        self.key = nn.Conv2d(in_channels, dim, kernel_size=1)
        nn.init.kaiming_uniform_(self.key.weight, nonlinearity="relu")
        nn.init.zeros_(self.key.bias)
        self.embed = nn.Conv2d(NUM_MAPS, out_channels, kernel_size=3, padding=1)
        nn.init.zeros_(self.embed.weight)
        nn.init.zeros_(self.embed.bias)
        self._windows: dict[tuple[int, int, str], Tensor] = {}

    def keys(self, s16: Tensor) -> Tensor:
        """Unit-length keys in float32 (object independent; once per frame)."""
        dtype = torch.float64 if s16.dtype == torch.float64 else torch.float32
        with torch.autocast(s16.device.type, enabled=False):
            keys = F.conv2d(s16.to(dtype), self.key.weight.to(dtype), self.key.bias.to(dtype))
            return F.normalize(keys, dim=1)

    def _window(self, height: int, width: int, device: torch.device) -> Tensor:
        cache_key = (height, width, str(device))
        if cache_key not in self._windows:
            self._windows[cache_key] = window_mask(height, width, self.window, device)
        return self._windows[cache_key]

    def maps(
        self,
        keys: Tensor,
        first_keys: Tensor,
        first_mask: Tensor,
        prev_keys: Tensor,
        prev_mask: Tensor,
    ) -> Tensor:
        """(N, 4, h, w) similarity maps: first-frame bg/object, previous-frame bg/object."""
        n, _, h, w = keys.shape
        with torch.autocast(keys.device.type, enabled=False):
            first = best_match(keys, first_keys, first_mask.reshape(n, 2, -1).to(keys.dtype))
            window = self._window(h, w, keys.device)
            prev = best_match(keys, prev_keys, prev_mask.reshape(n, 2, -1).to(keys.dtype), window)
        return torch.cat([first, prev], dim=1)

    def forward(
        self,
        keys: Tensor,
        first_keys: Tensor,
        first_mask: Tensor,
        prev_keys: Tensor,
        prev_mask: Tensor,
    ) -> Tensor:
        """The matching maps' contribution to the fusion module's first convolution."""
        maps = self.maps(keys, first_keys, first_mask, prev_keys, prev_mask)
        return self.embed(maps.to(self.embed.weight.dtype))
