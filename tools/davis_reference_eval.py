"""The official davis2017-evaluation toolkit's semi-supervised scoring, restated for timing.

The toolkit (github.com/davisvideochallenge/davis2017-evaluation) is not on PyPI, so this
script restates what ``evaluation_method.py`` runs, step for step and with the same
libraries (numpy, Pillow, OpenCV's ``cv2.dilate`` with ``skimage.morphology.disk``, pandas):
each sequence's ground truth and results are read whole as float64 arrays, split into one
boolean stack per object, every frame of every object gets ``db_eval_iou`` and ``f_measure``
(``_seg2bmap`` boundaries) in one process, and the CSVs are written with pandas. Only two
things differ: ``np.bool`` (gone from numpy) is ``bool``, and ``--binary`` reads DAVIS 2016
ground truth (0/255) as one object, as the toolkit needs its annotations converted for that.

    pip install opencv-python-headless scikit-image pandas
    python tools/davis_reference_eval.py --root DAVIS --split SPLIT --results DIR [--binary]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import pandas as pd


def db_eval_iou(annotation: np.ndarray, segmentation: np.ndarray) -> np.ndarray:
    """``davis2017/metrics.py`` db_eval_iou without void pixels: (T, H, W) -> (T,)."""
    annotation = annotation.astype(bool)
    segmentation = segmentation.astype(bool)
    void_pixels = np.zeros_like(segmentation)
    inters = np.sum((segmentation & annotation) & np.logical_not(void_pixels), axis=(-2, -1))
    union = np.sum((segmentation | annotation) & np.logical_not(void_pixels), axis=(-2, -1))
    j = inters / union
    if j.ndim == 0:
        j = 1 if np.isclose(union, 0) else j
    else:
        j[np.isclose(union, 0)] = 1
    return j


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """``davis2017/metrics.py`` _seg2bmap at the mask's own size."""
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def _cv2_disk_dilate(bmap: np.ndarray, radius: float) -> np.ndarray:
    """The toolkit's dilation: ``cv2.dilate`` with ``skimage.morphology.disk``."""
    import cv2  # here, so that the tests can import this file without OpenCV
    from skimage.morphology import disk

    return cv2.dilate(bmap.astype(np.uint8), disk(radius).astype(np.uint8))


def f_measure(
    foreground_mask: np.ndarray,
    gt_mask: np.ndarray,
    bound_th: float = 0.008,
    dilate: Callable[[np.ndarray, float], np.ndarray] = _cv2_disk_dilate,
    boundary: Callable[[np.ndarray], np.ndarray] = seg2bmap,
) -> float:
    """``davis2017/metrics.py`` f_measure with no void pixels. The tests pass a slow, literal
    ``dilate`` and ``boundary`` to check vos's against this statement of the definition."""
    void_pixels = np.zeros_like(foreground_mask).astype(bool)
    bound_pix = (
        bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(foreground_mask.shape))
    )
    fg_boundary = boundary(foreground_mask * np.logical_not(void_pixels))
    gt_boundary = boundary(gt_mask * np.logical_not(void_pixels))
    fg_dil = dilate(fg_boundary, bound_pix)
    gt_dil = dilate(gt_boundary, bound_pix)
    gt_match = gt_boundary * fg_dil
    fg_match = fg_boundary * gt_dil
    n_fg = np.sum(fg_boundary)
    n_gt = np.sum(gt_boundary)
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision = np.sum(fg_match) / float(n_fg)
        recall = np.sum(gt_match) / float(n_gt)
    if precision + recall == 0:
        return 0
    return 2 * precision * recall / (precision + recall)


def db_eval_boundary(annotation: np.ndarray, segmentation: np.ndarray) -> np.ndarray:
    """``davis2017/metrics.py`` db_eval_boundary over a (T, H, W) stack."""
    f_res = np.zeros(annotation.shape[0])
    for frame_id in range(annotation.shape[0]):
        f_res[frame_id] = f_measure(segmentation[frame_id], annotation[frame_id])
    return f_res


def db_statistics(per_frame_values: np.ndarray) -> tuple[float, float, float]:
    """``davis2017/utils.py`` db_statistics."""
    with np.errstate(all="ignore"):
        mean = np.nanmean(per_frame_values)
        recall = np.nanmean(per_frame_values > 0.5)
    n_bins = 4
    ids = np.round(np.linspace(1, len(per_frame_values), n_bins + 1) + 1e-10) - 1
    ids = ids.astype(np.uint8)
    d_bins = [per_frame_values[ids[i] : ids[i + 1] + 1] for i in range(0, 4)]
    with np.errstate(all="ignore"):
        decay = np.nanmean(d_bins[0]) - np.nanmean(d_bins[3])
    return mean, recall, decay


def all_gt_masks(folder: Path, binary: bool) -> tuple[np.ndarray, list[str]]:
    """``davis2017/davis.py`` get_all_masks(separate_objects_ids=True) (void -> background)."""
    paths = sorted(folder.glob("*.png"))
    first = np.array(Image.open(paths[0]))
    masks = np.zeros((len(paths), *first.shape))
    for i, path in enumerate(paths):
        masks[i] = np.array(Image.open(path))
        if binary:
            masks[i] = masks[i] != 0
    masks_void = np.zeros_like(masks)  # computed and, in semi-supervised scoring, not used
    for k in range(masks.shape[0]):
        masks_void[k, ...] = masks[k, ...] == 255
        masks[k, masks[k, ...] == 255] = 0
    num_objects = int(np.max(masks[0, ...]))
    tmp = np.ones((num_objects, *masks.shape)) * np.arange(1, num_objects + 1)[:, None, None, None]
    return (tmp == masks[None, ...]) > 0, [p.stem for p in paths]


def read_results(folder: Path, names: list[str]) -> np.ndarray:
    """``davis2017/results.py`` read_masks."""
    mask_0 = np.array(Image.open(folder / f"{names[0]}.png"))
    masks = np.zeros((len(names), *mask_0.shape))
    for ii, name in enumerate(names):
        masks[ii] = np.array(Image.open(folder / f"{name}.png"))
    num_objects = int(np.max(masks))
    tmp = np.ones((num_objects, *masks.shape)) * np.arange(1, num_objects + 1)[:, None, None, None]
    return (tmp == masks[None, ...]) > 0


def evaluate(root: Path, names: list[str], results: Path, binary: bool) -> pd.DataFrame:
    """``davis2017/evaluation.py`` DAVISEvaluation.evaluate, semi-supervised."""
    import pandas as pd

    rows = []
    for seq in names:
        gt, ids = all_gt_masks(root / "Annotations" / "480p" / seq, binary)
        gt, ids = gt[:, 1:-1], ids[1:-1]
        res = read_results(results / seq, ids)
        if res.shape[0] < gt.shape[0]:
            pad = np.zeros((gt.shape[0] - res.shape[0], *res.shape[1:]))
            res = np.concatenate([res, pad], axis=0)
        for ii in range(gt.shape[0]):
            j = db_eval_iou(gt[ii], res[ii])
            f = db_eval_boundary(gt[ii], res[ii])
            rows.append((f"{seq}_{ii + 1}", *db_statistics(j), *db_statistics(f)))
    columns = ["Sequence", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
    return pd.DataFrame(rows, columns=columns)


def main() -> None:
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--split", type=Path, required=True, help="a list file, one name a line")
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--binary", action="store_true", help="DAVIS 2016 0/255 ground truth")
    args = parser.parse_args()
    start = time.perf_counter()
    names = [n.strip() for n in args.split.read_text().splitlines() if n.strip()]
    table = evaluate(args.root, names, args.results, args.binary)
    means = table.drop(columns="Sequence").mean()
    g = {
        "J&F-Mean": (means["J-Mean"] + means["F-Mean"]) / 2,
        "J-Mean": means["J-Mean"],
        "J-Recall": means["J-Recall"],
        "J-Decay": means["J-Decay"],
        "F-Mean": means["F-Mean"],
        "F-Recall": means["F-Recall"],
        "F-Decay": means["F-Decay"],
    }
    label = args.split.stem
    pd.DataFrame([g]).to_csv(
        args.results / f"reference_global_results-{label}.csv", index=False, float_format="%.3f"
    )
    table[["Sequence", "J-Mean", "F-Mean"]].to_csv(
        args.results / f"reference_per-sequence_results-{label}.csv",
        index=False,
        float_format="%.3f",
    )
    frames = sum(len(list((args.root / "Annotations/480p" / n).glob("*.png"))) - 2 for n in names)
    elapsed = time.perf_counter() - start
    print(f"J&F-Mean {g['J&F-Mean']:.6f}  J {g['J-Mean']:.6f}  F {g['F-Mean']:.6f}")
    print(f"{len(names)} sequences, {frames} frames scored in {elapsed:.1f} s")
    assert not math.isnan(g["J&F-Mean"])


if __name__ == "__main__":
    main()
