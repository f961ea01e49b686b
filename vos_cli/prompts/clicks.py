"""Simulated clicks (training and the NoC evaluation) and the maps the network reads clicks from.

The protocol is the standard one of interactive segmentation (Xu et al. 2016; RITM; SAM's
evaluation): the first click is the object's interior point farthest from its boundary; each next
click goes to the centre of the largest error region, the pixel of the false-negative or
false-positive area farthest from that area's boundary (whichever is farther), positive on a
missed part, negative on a wrongly included one. The frame's edge counts as a boundary. Ties go to
the first pixel in row-major order, so every result is deterministic.
"""

from __future__ import annotations

import numpy as np
import torch

from vos_cli.prompts.types import Point

__all__ = ["click_maps", "distance_inside", "first_click", "next_click"]

#: Largest side the distance transform runs at; bigger regions are sampled on a coarser grid.
MAX_GRID = 256


def _column_distance(mask: np.ndarray) -> np.ndarray:
    """Per column, the distance to the nearest False pixel in that column (or past its ends)."""
    h, w = mask.shape
    rows = np.arange(h)[:, None].repeat(w, axis=1)
    # last False row at or above (-1 above the top), first False row at or below (h below)
    above = np.where(~mask, rows, -1)
    above = np.maximum.accumulate(above, axis=0)
    below = np.where(~mask, rows, h)
    below = np.minimum.accumulate(below[::-1], axis=0)[::-1]
    return np.minimum(rows - above, below - rows).astype(np.float32)


def distance_inside(mask: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance from each True pixel to the nearest False pixel (0 on False).

    Outside the array counts as False: a pixel on the edge is at distance 1 from it. Separable:
    column distances, then a brute-force minimum along each row (in row chunks).
    """
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    if not mask.any():
        return np.zeros((h, w), np.float32)
    g = torch.from_numpy(_column_distance(mask))
    g2 = g * g
    # distances to the array's left and right ends are the +-1 beyond them
    cols = torch.arange(w, dtype=torch.float32)
    diff2 = (cols[:, None] - cols[None, :]) ** 2  # (x, x')
    edge2 = torch.minimum(cols + 1, w - cols) ** 2  # to the columns -1 and w
    out = torch.empty((h, w), dtype=torch.float32)
    chunk = max(1, (1 << 22) // (w * w))
    for start in range(0, h, chunk):
        rows = g2[start : start + chunk]  # (r, x')
        best = (rows[:, None, :] + diff2[None]).amin(dim=2)  # (r, x)
        out[start : start + chunk] = torch.minimum(best, edge2[None])
    out = out.sqrt().numpy()
    out[~mask] = 0.0
    return out


def _farthest_inside(mask: np.ndarray) -> tuple[tuple[int, int], float] | None:
    """(x, y) of the pixel of ``mask`` farthest from its boundary and that distance; None if empty.

    Masks whose bounding box is larger than :data:`MAX_GRID` run on a grid of block centres; the
    click is then a pixel of the mask in the chosen block, and the distance is in full pixels.
    """
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    region = mask[y0:y1, x0:x1]
    step = max(1, -(-max(region.shape) // MAX_GRID))
    if step == 1:
        dist = distance_inside(region)
        iy, ix = np.unravel_index(int(np.argmax(dist)), dist.shape)
        return (int(x0 + ix), int(y0 + iy)), float(dist[iy, ix])
    rh, rw = -(-region.shape[0] // step), -(-region.shape[1] // step)
    centres_y = np.minimum(np.arange(rh) * step + step // 2, region.shape[0] - 1)
    centres_x = np.minimum(np.arange(rw) * step + step // 2, region.shape[1] - 1)
    coarse = region[centres_y[:, None], centres_x[None, :]]
    if not coarse.any():  # thin structures between the sample points: any block with a pixel
        padded = np.zeros((rh * step, rw * step), bool)
        padded[: region.shape[0], : region.shape[1]] = region
        coarse = padded.reshape(rh, step, rw, step).any(axis=(1, 3))
    dist = distance_inside(coarse)
    by, bx = np.unravel_index(int(np.argmax(dist)), dist.shape)
    cy, cx = int(centres_y[by]), int(centres_x[bx])
    if not region[cy, cx]:
        block = region[by * step : (by + 1) * step, bx * step : (bx + 1) * step]
        iy, ix = np.argwhere(block)[0]
        cy, cx = int(by * step + iy), int(bx * step + ix)
    return (int(x0 + cx), int(y0 + cy)), float(dist[by, bx]) * step


def first_click(mask: np.ndarray) -> Point | None:
    """The object's interior point farthest from its boundary (None for an empty mask)."""
    found = _farthest_inside(np.asarray(mask, bool))
    return None if found is None else Point(*found[0], positive=True)


def next_click(
    target: np.ndarray,
    predicted: np.ndarray,
    ignore: np.ndarray | None = None,
    negatives: bool = True,
) -> Point | None:
    """The corrective click for ``predicted`` against ``target`` (None when nothing is wrong).

    Positive at the centre of the missed area, or negative at the centre of the wrongly included
    area, whichever centre is farther from its area's boundary (a tie goes to the positive one).
    ``ignore`` pixels are neither; ``negatives=False`` only ever clicks on missed parts (for images
    whose background is not fully annotated).
    """
    target = np.asarray(target, bool)
    predicted = np.asarray(predicted, bool)
    keep = np.ones_like(target) if ignore is None else ~np.asarray(ignore, bool)
    missed = _farthest_inside(target & ~predicted & keep)
    extra = _farthest_inside(~target & predicted & keep) if negatives else None
    if missed is None and extra is None:
        return None
    if extra is None or (missed is not None and missed[1] >= extra[1]):
        assert missed is not None
        return Point(*missed[0], positive=True)
    return Point(*extra[0], positive=False)


def click_maps(
    points: list[Point],
    window: tuple[float, float, float, float],
    size: int,
    sigma: float,
) -> torch.Tensor:
    """(2, size, size) maps of the clicks inside a crop: positive, negative.

    ``window``: the crop's (x0, y0, x1, y1) in frame pixels, resampled to ``size`` x ``size``. A
    click at pixel (x, y) is at its centre (x + 0.5, y + 0.5); each map is the maximum over its
    clicks of a Gaussian bump of ``sigma`` crop pixels (1 at the click).
    """
    maps = torch.zeros((2, size, size), dtype=torch.float32)
    if not points:
        return maps
    x0, y0, x1, y1 = window
    sx, sy = size / (x1 - x0), size / (y1 - y0)
    grid = torch.arange(size, dtype=torch.float32) + 0.5
    for point in points:
        u = (point.x + 0.5 - x0) * sx
        v = (point.y + 0.5 - y0) * sy
        bump = torch.exp(
            -((grid[None, :] - u) ** 2 + (grid[:, None] - v) ** 2) / (2.0 * sigma * sigma)
        )
        channel = 0 if point.positive else 1
        maps[channel] = torch.maximum(maps[channel], bump)
    return maps
