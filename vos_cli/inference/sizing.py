"""The network's input size for a video: the model's own, raised for small objects.

At the default 240p a stride-16 feature map is a 15x27 grid, and an object that covers only a
few of its cells is smeared into the background by the first update (on DAVIS 2016 dev the
shipped model scored 0.69 J&F on its two small objects at 240p and 0.78 at 360p, while its four
large ones fell from 0.59 to 0.50 at 360p). So a model may name a larger size for videos whose
smallest object in its first mask covers fewer than :data:`SMALL_OBJECT_CELLS` cells.
"""

from __future__ import annotations

import numpy as np

STRIDE = 16
SMALL_OBJECT_CELLS = 12.0
"""Fewer stride-16 cells than this at the model's own size make an object small (at 240p on a
16:9 video that is 3% of the frame, the line :mod:`vos_cli.bench.object_size` reports by)."""


def working_size(height: int, width: int, size: int | None) -> tuple[int, int]:
    """The network's input size: the short side scaled to ``size`` (never up), aspect kept.

    ``None`` keeps the frame's size.
    """
    if not size or min(height, width) <= size:
        return height, width
    scale = size / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def smallest_object_cells(label_map: np.ndarray, size: int | None) -> float:
    """Stride-16 cells the smallest object of ``label_map`` covers with the network at ``size``.

    Ids 0 (background) and 255 (ignored) are not objects; a map without objects gives ``inf``.
    """
    height, width = label_map.shape
    counts = np.bincount(label_map.ravel(), minlength=256)[1:255]
    present = counts[counts > 0]
    if not present.size:
        return float("inf")
    work_h, work_w = working_size(height, width, size)
    return float(present.min()) / label_map.size * (work_h * work_w) / STRIDE**2


def size_for_first_mask(label_map: np.ndarray, size: int, small_object_size: int) -> int:
    """``small_object_size`` when the first mask's smallest object is small at ``size``
    (:data:`SMALL_OBJECT_CELLS`), else ``size``; 0 for either means the video's resolution."""
    if not small_object_size or not size:
        return size
    if smallest_object_cells(label_map, size) < SMALL_OBJECT_CELLS:
        return small_object_size
    return size
