"""Region J and boundary F of one object in one frame, as the DAVIS toolkit defines them.

Same numbers as the toolkit's ``db_eval_iou`` and ``f_measure`` (``seg2bmap`` boundaries,
``cv2.dilate`` with ``skimage.morphology.disk``).
"""

from __future__ import annotations

import math

import numpy as np

BOUND_TH = 0.008
"""Boundary tolerance of F: a fraction of the image diagonal (or pixels when >= 1)."""


def jaccard(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> float:
    """Region similarity J: intersection over union of two binary masks.

    Void pixels are removed from both masks; when nothing is left in the union (both masks
    empty) the prediction is perfect and J = 1, as in the toolkit.
    """
    gt = np.asarray(gt, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    if gt.shape != pred.shape:
        raise ValueError(f"mask shapes differ: {gt.shape} vs {pred.shape}")
    keep = np.ones_like(gt) if void is None else ~np.asarray(void, dtype=bool)
    union = np.count_nonzero((gt | pred) & keep)
    if union == 0:
        return 1.0
    return np.count_nonzero(gt & pred & keep) / union


def seg_to_boundary(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary map of a binary mask (Berkeley ``seg2bmap``).

    A pixel is boundary when it differs from its east, south or south-east neighbour
    (outside the image counts as background), except that the last row only compares
    with the east neighbour, the last column only with the south one, and the bottom-right
    pixel is never boundary. This places boundaries half a pixel towards the origin.
    """
    seg = np.asarray(mask, dtype=bool)
    if seg.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {seg.shape}")
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    bmap = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    bmap[-1, :] = seg[-1, :] ^ east[-1, :]
    bmap[:, -1] = seg[:, -1] ^ south[:, -1]
    bmap[-1, -1] = False
    return bmap


def boundary_radius(shape: tuple[int, ...], bound_th: float = BOUND_TH) -> int:
    """Match tolerance in pixels: ``ceil(bound_th * diagonal)``, or ``bound_th`` itself if >= 1."""
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ValueError(f"a pixel tolerance must be a whole number, got {bound_th}")
        return int(bound_th)
    return int(math.ceil(bound_th * math.hypot(shape[0], shape[1])))


def dilate_disk(bmap: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by the disk ``{(dy, dx): dy**2 + dx**2 <= radius**2}``.

    Same result as ``cv2.dilate(b, skimage.morphology.disk(radius))`` (pixels beyond the
    image never contribute). The disk is split into one horizontal run per row offset ``dy``
    of half-width ``isqrt(r**2 - dy**2)``; each run is a prefix-sum window, and all work is
    confined to the bounding box of the set pixels grown by the radius.
    """
    src = np.asarray(bmap, dtype=bool)
    out = np.zeros_like(src)
    ys, xs = np.nonzero(src)
    if ys.size == 0:
        return out
    r = int(radius)
    height, width = src.shape
    y0, y1 = max(int(ys.min()) - r, 0), min(int(ys.max()) + r + 1, height)
    x0, x1 = max(int(xs.min()) - r, 0), min(int(xs.max()) + r + 1, width)
    sub = src[y0:y1, x0:x1]
    h, w = sub.shape
    # csum[:, r + j] = number of set pixels in columns < j (clamped to 0..w outside).
    csum = np.zeros((h, w + 1 + 2 * r), dtype=np.int32)
    csum[:, r + 1 : r + 1 + w] = np.cumsum(sub, axis=1, dtype=np.int32)
    csum[:, r + 1 + w :] = csum[:, r + w : r + w + 1]
    runs: dict[int, np.ndarray] = {}
    acc = np.zeros_like(sub)
    for dy in range(-min(r, h - 1), min(r, h - 1) + 1):
        half = math.isqrt(r * r - dy * dy)
        run = runs.get(half)
        if run is None:
            # any set pixel in columns x-half .. x+half
            run = csum[:, r + half + 1 : r + half + 1 + w] > csum[:, r - half : r - half + w]
            runs[half] = run
        if dy >= 0:
            acc[: h - dy] |= run[dy:]
        else:
            acc[-dy:] |= run[: h + dy]
    out[y0:y1, x0:x1] = acc
    return out


def boundary_f(
    gt: np.ndarray,
    pred: np.ndarray,
    void: np.ndarray | None = None,
    bound_th: float = BOUND_TH,
) -> float:
    """Boundary F-measure between a predicted and a ground-truth binary mask.

    Boundary pixels of each mask (void pixels zeroed first) count as matched when a boundary
    pixel of the other mask lies within the disk tolerance. Precision/recall on empty
    boundaries follow the toolkit: both empty -> 1/1, only prediction empty -> P=1, R=0, only
    ground truth empty -> P=0, R=1; F = 2PR/(P+R), or 0 when P+R = 0.
    """
    gt = np.asarray(gt, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    if gt.shape != pred.shape:
        raise ValueError(f"mask shapes differ: {gt.shape} vs {pred.shape}")
    if void is not None:
        keep = ~np.asarray(void, dtype=bool)
        gt = gt & keep
        pred = pred & keep
    radius = boundary_radius(gt.shape, bound_th)
    pred_b = seg_to_boundary(pred)
    gt_b = seg_to_boundary(gt)
    n_pred = int(np.count_nonzero(pred_b))
    n_gt = int(np.count_nonzero(gt_b))
    if n_pred == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    elif n_pred == 0:
        precision, recall = 1.0, 0.0
    elif n_gt == 0:
        precision, recall = 0.0, 1.0
    else:
        precision = np.count_nonzero(pred_b & dilate_disk(gt_b, radius)) / n_pred
        recall = np.count_nonzero(gt_b & dilate_disk(pred_b, radius)) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)
