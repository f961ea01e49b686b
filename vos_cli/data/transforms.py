"""Snippet-consistent augmentation and resizing.

A snippet is ``images`` (T,3,H,W) float32 RGB in [0, 1] and ``labels`` (T,H,W) int64 (0
background, 1..O objects, 255 ignore). Geometric transforms are drawn once per snippet and applied
to every frame, because the model propagates masks from frame to frame: a flip or zoom that
differed between frames would be a motion the real videos never show. Only a few pixels of
per-frame translation (camera shake) and a little per-frame brightness flicker vary along the
snippet, for robustness.

All random draws come from a caller-supplied :class:`numpy.random.Generator`, so a snippet is a pure
function of its seed. Images are resized bilinearly with antialiasing, labels with nearest
neighbour so no new ids appear at object borders. Images stay uint8 (channels-last, as decoded)
through resizing and cropping and become float only at the target size: torch's uint8 antialiased
resize is ~20x faster than the float one, which dominates the cost of a real-video snippet.

Why not ``torchvision.transforms.v2`` with ``tv_tensors.Mask`` (measured 2026-12-02, torchvision
0.29.1, one thread, an 8-frame 480x854 snippet resized to 324x576, flipped and cropped per frame):
v2's joint transforms (``v2.Resize()(image, mask)``) resize masks with NEAREST, which differs
from the nearest-exact used here and by the tracker at test time (other labels at object
borders); the functional calls with ``InterpolationMode.NEAREST_EXACT`` give identical images
and labels but run the same kernels (10.7-22.3 ms against ours 13.3-17.5 ms minimum over 30
alternating runs beside two training jobs: no gain); v2's random transforms draw from torch's
global RNG, not the snippet's own generator (snippets would stop being a pure function of their
seed, which exact resume relies on), cannot place the crop around frame 0's objects, and its
colour jitter clamps after each of its three operations where ours applies them as one matrix.
So this module keeps its own code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

IGNORE_LABEL = 255

# Fill colour for image regions that a zoom-out exposes (ImageNet mean): the labels there are
# IGNORE_LABEL, so the value only has to look neutral to the network.
_PAD_RGB = (124, 116, 104)
_GRAY_WEIGHTS = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class AugmentConfig:
    """Strength of the training augmentation (defaults follow common VOS practice)."""

    hflip_prob: float = 0.5
    scale_range: tuple[float, float] = (1.0, 1.3)
    """Zoom relative to the scale at which the frame just covers the target size (plus jitter
    margin). Values below 1 zoom out and pad with IGNORE_LABEL; the default avoids that because
    such grey borders never occur in test videos."""
    object_crop_prob: float = 0.9
    """Probability that the crop is placed to contain the objects of frame 0 (else uniform)."""
    frame_jitter: float = 0.01
    """Per-frame translation jitter, as a fraction of the larger target side."""
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    frame_brightness: float = 0.02
    """Standard deviation of the per-frame brightness flicker."""


def frames_to_tensor(frames: Sequence[np.ndarray]) -> torch.Tensor:
    """Stack HxWx3 uint8 frames into a (T,3,H,W) uint8 tensor (a channels-last view, no copy)."""
    array = np.stack([np.asarray(f, dtype=np.uint8) for f in frames])
    return torch.from_numpy(array).permute(0, 3, 1, 2)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """(T,3,H,W) uint8 or float images as contiguous float32 in [0, 1]."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)
    return images.float().contiguous()


def labels_to_tensor(labels: Sequence[np.ndarray]) -> torch.Tensor:
    """Stack HxW uint8 label maps into a (T,H,W) uint8 tensor (cheap to resize and crop)."""
    return torch.from_numpy(np.stack([np.asarray(a, dtype=np.uint8) for a in labels]))


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, antialiased resize of (T,3,H,W) uint8 or float images, keeping the dtype."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    out = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out if out.dtype == torch.uint8 else out.clamp_(0.0, 1.0)


def resize_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of (T,H,W) labels, so no blended ids appear at borders."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    out = F.interpolate(labels[:, None].to(torch.uint8), size=size, mode="nearest-exact")
    return out[:, 0].to(labels.dtype)


def resize_snippet(
    images: torch.Tensor, labels: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain resize to ``size`` (H, W) without augmentation, for validation snippets.

    Returns float32 images in [0, 1] whatever the input dtype.
    """
    return to_float(resize_images(images, size)), resize_labels(labels, size)


def color_jitter(
    images: torch.Tensor, rng: np.random.Generator, config: AugmentConfig = AugmentConfig()
) -> torch.Tensor:
    """Brightness, contrast and saturation jitter, shared by the snippet plus a small flicker.

    Takes uint8 or float (T,3,H,W) images, returns float32 in [0, 1]. The three operations (as in
    torchvision: scale; blend with the mean gray level; blend with the gray image) are all linear
    in the pixel, so they are folded into one 3x3 colour matrix and offset per frame and applied
    in a single batched matmul.
    """
    images = to_float(images)
    t, c, h, w = images.shape
    brightness = rng.uniform(1 - config.brightness, 1 + config.brightness)
    flicker = 1.0 + config.frame_brightness * rng.standard_normal(t)
    contrast = rng.uniform(1 - config.contrast, 1 + config.contrast)
    saturation = rng.uniform(1 - config.saturation, 1 + config.saturation)

    k = torch.from_numpy((brightness * flicker).astype(np.float32))  # (T,)
    weights = torch.tensor(_GRAY_WEIGHTS, dtype=torch.float32)
    flat = images.view(t, c, h * w)
    mean_gray = flat.mean(-1) @ weights  # (T,), before brightness
    # z = s*c*k*x + (1-s)*c*k*gray(x) + (1-c)*k*mean_gray
    eye = torch.eye(3).expand(t, 3, 3)
    matrix = (saturation * contrast * k).view(t, 1, 1) * eye + (
        (1 - saturation) * contrast * k
    ).view(t, 1, 1) * weights.view(1, 1, 3)
    offset = ((1 - contrast) * k * mean_gray).view(t, 1, 1).expand(t, 3, 1)
    out = torch.baddbmm(offset, matrix, flat)
    return out.view(t, c, h, w).clamp_(0.0, 1.0)


def _crop_offset(
    rng: np.random.Generator,
    full: int,
    crop: int,
    margin: int,
    fg_lo: int | None,
    fg_hi: int | None,
) -> int:
    """Offset of a ``crop``-long window in ``full``, leaving ``margin`` for jitter on both sides.

    With a foreground extent [fg_lo, fg_hi] the window is chosen to contain it when it fits, else
    to be centred on it (up to a little randomness), so the sampled object is rarely cropped away.
    """
    lo, hi = margin, full - crop - margin
    if hi <= lo:
        return max(lo, 0)
    if fg_lo is None or fg_hi is None:
        return int(rng.integers(lo, hi + 1))
    contain_lo, contain_hi = max(lo, fg_hi - crop + 1), min(hi, fg_lo)
    if contain_lo <= contain_hi:
        return int(rng.integers(contain_lo, contain_hi + 1))
    centre = (fg_lo + fg_hi + 1) / 2 - crop / 2 + rng.normal(0.0, 0.1 * crop)
    return int(np.clip(round(centre), lo, hi))


def augment_snippet(
    images: torch.Tensor,
    labels: torch.Tensor,
    size: tuple[int, int],
    rng: np.random.Generator,
    config: AugmentConfig = AugmentConfig(),
    focus_ids: Sequence[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip, zoom, crop to ``size`` and colour-jitter a snippet, identically for all frames.

    ``focus_ids`` are the label ids the crop should keep in view in frame 0 (default: every id
    other than background and ignore). Regions outside the source frame after a zoom-out are
    labelled ``IGNORE_LABEL``. Images may be uint8 (fast path) or float; the result is float32.
    """
    t, _, h0, w0 = images.shape
    height, width = size
    jitter = int(round(config.frame_jitter * max(height, width)))
    cover = max((height + 2 * jitter) / h0, (width + 2 * jitter) / w0)
    scale = cover * rng.uniform(*config.scale_range)
    h1, w1 = max(1, round(h0 * scale)), max(1, round(w0 * scale))
    images = resize_images(images, (h1, w1))
    labels = resize_labels(labels, (h1, w1))

    if rng.random() < config.hflip_prob:
        images, labels = images.flip(-1), labels.flip(-1)

    need_h, need_w = height + 2 * jitter, width + 2 * jitter
    if h1 < need_h or w1 < need_w:
        pad_h, pad_w = max(0, need_h - h1), max(0, need_w - w1)
        top, left = int(rng.integers(0, pad_h + 1)), int(rng.integers(0, pad_w + 1))
        padded = torch.empty(t, 3, h1 + pad_h, w1 + pad_w, dtype=images.dtype)
        fill = torch.tensor(_PAD_RGB, dtype=torch.float32)
        padded[:] = (fill if images.dtype == torch.uint8 else fill / 255).view(1, 3, 1, 1)
        padded[:, :, top : top + h1, left : left + w1] = images
        padded_labels = torch.full((t, h1 + pad_h, w1 + pad_w), IGNORE_LABEL, dtype=labels.dtype)
        padded_labels[:, top : top + h1, left : left + w1] = labels
        images, labels = padded, padded_labels
        h1, w1 = h1 + pad_h, w1 + pad_w

    first = labels[0]
    if focus_ids is None:
        fg = (first > 0) & (first != IGNORE_LABEL)
    else:
        fg = torch.isin(first, torch.as_tensor(list(focus_ids), dtype=first.dtype))
    ys = xs = (None, None)
    if rng.random() < config.object_crop_prob and bool(fg.any()):
        rows = torch.nonzero(fg.any(1)).flatten()
        cols = torch.nonzero(fg.any(0)).flatten()
        ys = (int(rows[0]), int(rows[-1]))
        xs = (int(cols[0]), int(cols[-1]))
    y0 = _crop_offset(rng, h1, height, jitter, *ys)
    x0 = _crop_offset(rng, w1, width, jitter, *xs)

    dy = rng.integers(-jitter, jitter + 1, size=t) if jitter else np.zeros(t, dtype=np.int64)
    dx = rng.integers(-jitter, jitter + 1, size=t) if jitter else np.zeros(t, dtype=np.int64)
    dy[0] = dx[0] = 0  # frame 0 is where the crop was placed to keep the objects in view
    ys0 = np.clip(y0 + dy, 0, h1 - height)
    xs0 = np.clip(x0 + dx, 0, w1 - width)
    images = torch.stack(
        [images[i, :, ys0[i] : ys0[i] + height, xs0[i] : xs0[i] + width] for i in range(t)]
    )
    labels = torch.stack(
        [labels[i, ys0[i] : ys0[i] + height, xs0[i] : xs0[i] + width] for i in range(t)]
    )
    return color_jitter(images, rng, config), labels.contiguous()
