"""Leak measures: how much background a mask spreads onto, and whether it grows over a video.

J&F averages over frames, so a mask that starts well and then spreads over look-alike background
(a dancer's mask onto the audience) reads as merely mediocre. These measures separate the two
failures: the false-positive area relative to the object's own area (a leak) and the missed
share of the object (a loss), plus J in the first and the last quarter of the scored frames.
Frames are scored as the benchmark scores them (every annotated frame but the first and last),
for each object of the sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vos_cli.bench.metrics.report import write_csv_atomic
from vos_cli.data.davis import VOID_ID, DavisSequence, read_label_png
from vos_cli.errors import VosError

LEAK_COLUMNS = ("Sequence", "FP-Area", "Missed", "J-First-Quarter", "J-Last-Quarter")


@dataclass(frozen=True)
class LeakScore:
    """One object of one sequence (``name`` as in the per-sequence CSV: ``seq`` or ``seq_k``)."""

    name: str
    fp_area: float
    """Wrongly claimed pixels summed over the scored frames, over the object's own pixels."""
    missed: float
    """Object pixels not claimed, over the object's pixels."""
    j_first: float
    j_last: float


def _jaccard(gt: np.ndarray, pred: np.ndarray) -> float:
    union = np.count_nonzero(gt | pred)
    return 1.0 if union == 0 else np.count_nonzero(gt & pred) / union


def sequence_leak(
    gt_masks: list[np.ndarray], pred_masks: list[np.ndarray], num_objects: int, name: str
) -> list[LeakScore]:
    """Leak measures of objects 1..num_objects from scored frames' (H, W) id maps."""
    if len(gt_masks) != len(pred_masks) or not gt_masks:
        raise VosError(f"sequence '{name}': need as many result frames as ground-truth frames")
    scores = []
    quarter = max(1, len(gt_masks) // 4)
    for k in range(1, num_objects + 1):
        fp = missed = area = 0
        js = []
        for gt, pred in zip(gt_masks, pred_masks, strict=True):
            keep = gt != VOID_ID
            gt_k, pred_k = (gt == k) & keep, (pred == k) & keep
            fp += np.count_nonzero(pred_k & ~gt_k)
            missed += np.count_nonzero(gt_k & ~pred_k)
            area += np.count_nonzero(gt_k)
            js.append(_jaccard(gt_k, pred_k))
        label = name if num_objects == 1 else f"{name}_{k}"
        scores.append(
            LeakScore(
                label,
                fp / max(area, 1),
                missed / max(area, 1),
                float(np.mean(js[:quarter])),
                float(np.mean(js[-quarter:])),
            )
        )
    return scores


def leak_scores(
    sequences: list[DavisSequence], results_dir: Path, binary: bool = False
) -> list[LeakScore]:
    """Leak measures of every object of a scored DAVIS results folder (``<seq>/<frame>.png``).

    ``binary`` (DAVIS 2016) turns any predicted id into object 1, as the benchmark does.
    """
    scores: list[LeakScore] = []
    for seq in sequences:
        names = [p.stem for p in seq.annotation_paths[1:-1]]
        gts = [seq.read_annotation(i) for i in range(1, len(seq.annotation_paths) - 1)]
        preds = []
        for frame in names:
            pred = read_label_png(Path(results_dir) / seq.name / f"{frame}.png", binary=False)
            preds.append((pred != 0).astype(np.uint8) if binary else pred)
        scores.extend(sequence_leak(gts, preds, seq.num_objects(), seq.name))
    return scores


def mean_leak(scores: list[LeakScore]) -> LeakScore:
    """The mean over objects, as J&F is averaged."""
    return LeakScore(
        "mean",
        float(np.mean([s.fp_area for s in scores])),
        float(np.mean([s.missed for s in scores])),
        float(np.mean([s.j_first for s in scores])),
        float(np.mean([s.j_last for s in scores])),
    )


def write_leak_csv(scores: list[LeakScore], path: Path) -> Path:
    """Per-object rows and a final ``mean`` row, 3 decimals, written atomically."""
    rows = [list(LEAK_COLUMNS)]
    for s in [*scores, mean_leak(scores)]:
        rows.append([s.name, *(f"{v:.3f}" for v in (s.fp_area, s.missed, s.j_first, s.j_last))])
    write_csv_atomic(Path(path), rows)
    return Path(path)
