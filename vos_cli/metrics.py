"""DAVIS semi-supervised scoring: region J, boundary F and their Mean/Recall/Decay statistics.

A numpy-only re-implementation of the official ``davis2017-evaluation`` toolkit
(github.com/davisvideochallenge/davis2017-evaluation, ``davis2017/metrics.py``, ``utils.py``,
``evaluation.py``, ``evaluation_method.py``) that reproduces its numbers; where the toolkit's
behaviour is surprising, the docstrings below say what it does and why we follow it:

* Objects are ids 1..N with N the largest id of the first ground-truth frame; the first and
  the last frame of every sequence are not scored.
* Void (255 in DAVIS 2017 ground truth): the toolkit zeroes 255 before splitting objects and
  then looks for 255 in the already binary masks, so void pixels end up as plain background.
  ``exclude_void=False`` (the default) reproduces that; ``exclude_void=True`` instead removes
  void pixels from both masks as the toolkit's ``void_pixels`` argument intends.
* Decay compares the first and the last of four (overlapping) bins built with the toolkit's
  ``round(linspace(1, n, 5)) - 1`` edges, not ``np.array_split``.
"""

from __future__ import annotations

import csv
import math
import multiprocessing
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Group
from rich.table import Table

from vos_cli.data.davis import VOID_ID, DavisSequence, read_label_png
from vos_cli.errors import VosError
from vos_cli.io.atomic import temp_beside

BOUND_TH = 0.008
"""Boundary tolerance of F: a fraction of the image diagonal (or pixels when >= 1)."""

GLOBAL_COLUMNS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
SEQUENCE_COLUMNS = ("Sequence", "J-Mean", "F-Mean")

_MAX_LISTED = 5


# ----------------------------------------------------------------------------- per-frame metrics


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


# ----------------------------------------------------------------------------- statistics


def db_statistics(values: np.ndarray | Sequence[float]) -> tuple[float, float, float]:
    """Mean, Recall (fraction of frames > 0.5) and Decay of one object's per-frame scores.

    Decay = mean of the first bin - mean of the last bin, the bins being ``v[e[i]:e[i+1]+1]``
    with edges ``e = round(linspace(1, n, 5) + 1e-10) - 1`` (neighbouring bins share their edge
    frame), exactly as the toolkit's ``db_statistics``. The toolkit stores the edges as uint8;
    we use plain integers, which gives the same result for up to 256 scored frames.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return math.nan, math.nan, math.nan
    edges = (np.round(np.linspace(1, v.size, 5) + 1e-10) - 1).astype(np.int64)
    first = v[edges[0] : edges[1] + 1]
    last = v[edges[3] : edges[4] + 1]
    with warnings.catch_warnings():  # all-NaN input gives NaN, quietly, like the toolkit
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = float(np.nanmean(v))
        decay = float(np.nanmean(first) - np.nanmean(last))
    recall = float(np.mean(v > 0.5))
    return mean, recall, decay


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ObjectScore:
    """Statistics of one object of one sequence (a row of the per-sequence CSV)."""

    sequence: str
    object_id: int
    j_mean: float
    j_recall: float
    j_decay: float
    f_mean: float
    f_recall: float
    f_decay: float

    @property
    def name(self) -> str:
        """Row label used by the toolkit: ``<sequence>_<object id>``."""
        return f"{self.sequence}_{self.object_id}"


@dataclass
class SequenceScores:
    """Per-frame scores of one sequence: ``j``/``f`` have shape (num_objects, T - 2).

    Column ``t`` is frame ``t + 1`` of the sequence (first and last frames are not scored).
    """

    name: str
    j: np.ndarray
    f: np.ndarray

    def object_scores(self) -> list[ObjectScore]:
        """Mean/Recall/Decay of each object."""
        rows = []
        for k in range(self.j.shape[0]):
            jm, jr, jd = db_statistics(self.j[k])
            fm, fr, fd = db_statistics(self.f[k])
            rows.append(ObjectScore(self.name, k + 1, jm, jr, jd, fm, fr, fd))
        return rows


@dataclass
class BenchResult:
    """All scored objects; global numbers are plain means over objects of all sequences."""

    objects: list[ObjectScore]

    def _mean(self, attr: str) -> float:
        if not self.objects:
            return math.nan
        return float(np.mean([getattr(o, attr) for o in self.objects]))

    @property
    def j_mean(self) -> float:
        return self._mean("j_mean")

    @property
    def f_mean(self) -> float:
        return self._mean("f_mean")

    @property
    def jf_mean(self) -> float:
        """The headline number: (J-Mean + F-Mean) / 2."""
        return (self.j_mean + self.f_mean) / 2

    def global_metrics(self) -> dict[str, float]:
        """The global CSV row, keyed by :data:`GLOBAL_COLUMNS`."""
        values = (
            self.jf_mean,
            self.j_mean,
            self._mean("j_recall"),
            self._mean("j_decay"),
            self.f_mean,
            self._mean("f_recall"),
            self._mean("f_decay"),
        )
        return dict(zip(GLOBAL_COLUMNS, values, strict=True))


# ----------------------------------------------------------------------------- evaluation


def evaluate_frame(
    gt: np.ndarray,
    pred: np.ndarray,
    num_objects: int,
    *,
    exclude_void: bool = False,
    bound_th: float = BOUND_TH,
) -> tuple[np.ndarray, np.ndarray]:
    """J and F of objects 1..num_objects in one frame (``gt``/``pred`` are HxW id maps)."""
    void = (gt == VOID_ID) if exclude_void else None
    j = np.empty(num_objects)
    f = np.empty(num_objects)
    for k in range(1, num_objects + 1):
        gt_k = gt == k
        pred_k = pred == k
        j[k - 1] = jaccard(gt_k, pred_k, void)
        f[k - 1] = boundary_f(gt_k, pred_k, void, bound_th)
    return j, f


def _check_ids(pred: np.ndarray, num_objects: int, sequence: str, where: str) -> None:
    if pred.size == 0:
        return
    hi, lo = int(pred.max()), int(pred.min())
    if hi > num_objects or lo < 0:
        bad = hi if hi > num_objects else lo
        raise VosError(
            f"Results for sequence '{sequence}' hold object id {bad} in {where}, "
            f"but the sequence has {num_objects} object(s)"
        )


def evaluate_sequence(
    gt_masks: np.ndarray,
    pred_masks: np.ndarray,
    num_objects: int,
    *,
    name: str = "sequence",
    binary: bool = False,
    exclude_void: bool = False,
    bound_th: float = BOUND_TH,
) -> SequenceScores:
    """Score a whole in-memory sequence given as (T, H, W) id maps.

    Frames 1..T-2 are scored (the first frame is the given reference, the last is skipped by
    the protocol). ``binary`` (DAVIS 2016) turns any non-zero predicted id into object 1;
    otherwise ids above ``num_objects`` are an error and missing objects are empty masks.
    """
    gt_masks = np.asarray(gt_masks)
    pred_masks = np.asarray(pred_masks)
    if gt_masks.ndim != 3 or gt_masks.shape != pred_masks.shape:
        raise VosError(
            f"Sequence '{name}': ground truth {gt_masks.shape} and results {pred_masks.shape} "
            "must both be (T, H, W) of the same size"
        )
    t = gt_masks.shape[0]
    if t < 3:
        raise VosError(f"Sequence '{name}' has {t} frame(s); scoring needs at least 3")
    js, fs = [], []
    for i in range(1, t - 1):
        pred = pred_masks[i]
        if binary:
            pred = (pred != 0).astype(np.uint8)
        else:
            _check_ids(pred, num_objects, name, f"frame {i}")
        j, f = evaluate_frame(
            gt_masks[i], pred, num_objects, exclude_void=exclude_void, bound_th=bound_th
        )
        js.append(j)
        fs.append(f)
    return SequenceScores(name, np.stack(js, axis=1), np.stack(fs, axis=1))


def _scored_names(seq: DavisSequence) -> list[str]:
    """Frame names that are scored: every annotated frame but the first and the last."""
    return [p.stem for p in seq.annotation_paths[1:-1]]


def _check_ground_truth(seq: DavisSequence) -> None:
    n_anno, n_frames = len(seq.annotation_paths), len(seq.frame_paths)
    if n_anno < n_frames:
        folder = seq.annotation_paths[0].parent if seq.annotation_paths else seq.name
        raise VosError(
            f"Ground truth {folder} annotates {n_anno} of {n_frames} frames; "
            "scoring needs every frame annotated"
        )
    if n_anno < 3:
        raise VosError(f"Sequence '{seq.name}' has {n_anno} frame(s); scoring needs at least 3")


def _check_results(sequences: list[DavisSequence], results_dir: Path) -> None:
    """Fail early, listing a few of the missing sequence folders or frames."""
    if not results_dir.is_dir():
        raise VosError(f"Results folder {results_dir} does not exist")
    missing_seqs = [s.name for s in sequences if not (results_dir / s.name).is_dir()]
    if missing_seqs:
        listed = ", ".join(missing_seqs[:_MAX_LISTED])
        more = "" if len(missing_seqs) <= _MAX_LISTED else ", ..."
        raise VosError(
            f"Results folder {results_dir} lacks {len(missing_seqs)} of {len(sequences)} "
            f"sequence folders: {listed}{more}"
        )
    missing: list[str] = []
    n_seq = 0
    for seq in sequences:
        folder = results_dir / seq.name
        absent = [n for n in _scored_names(seq) if not (folder / f"{n}.png").is_file()]
        if absent:
            n_seq += 1
            missing += [f"{seq.name}/{n}.png" for n in absent]
    if missing:
        listed = ", ".join(missing[:_MAX_LISTED])
        more = "" if len(missing) <= _MAX_LISTED else ", ..."
        raise VosError(
            f"Results folder {results_dir} lacks {len(missing)} frame(s) in {n_seq} "
            f"sequence(s): {listed}{more}"
        )


def _evaluate_davis_sequence(
    seq: DavisSequence, results_dir: Path, exclude_void: bool, bound_th: float
) -> list[ObjectScore]:
    """Worker: score one sequence reading one frame at a time (memory ~ one frame)."""
    num_objects = seq.num_objects()
    js, fs = [], []
    for i in range(1, len(seq.annotation_paths) - 1):
        gt = seq.read_annotation(i)
        path = results_dir / seq.name / f"{seq.annotation_paths[i].stem}.png"
        pred = read_label_png(path, binary=seq.binary_annotations)
        if pred.shape != gt.shape:
            raise VosError(
                f"Result {path} is {pred.shape[1]}x{pred.shape[0]} but the ground truth "
                f"is {gt.shape[1]}x{gt.shape[0]}"
            )
        if not seq.binary_annotations:
            _check_ids(pred, num_objects, seq.name, str(path))
        j, f = evaluate_frame(gt, pred, num_objects, exclude_void=exclude_void, bound_th=bound_th)
        js.append(j)
        fs.append(f)
    scores = SequenceScores(seq.name, np.stack(js, axis=1), np.stack(fs, axis=1))
    return scores.object_scores()


def evaluate_results(
    sequences: list[DavisSequence],
    results_dir: Path,
    processes: int = 2,
    *,
    exclude_void: bool = False,
    bound_th: float = BOUND_TH,
    progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Score ``<results_dir>/<seq>/<frame>.png`` id maps against DAVIS ground truth.

    Sequences are spread over ``processes`` worker processes (spawned, so a parent holding
    torch threads is safe); everything is checked up front so a missing folder or frame fails
    in seconds, not after scoring. ``progress`` is called with each finished sequence name.
    """
    results_dir = Path(results_dir)
    if not sequences:
        raise VosError("No sequences to evaluate")
    for seq in sequences:
        _check_ground_truth(seq)
    _check_results(sequences, results_dir)

    args = (results_dir, exclude_void, bound_th)
    per_seq: list[list[ObjectScore]] = []
    workers = min(max(int(processes), 1), len(sequences))
    if workers == 1:
        for seq in sequences:
            per_seq.append(_evaluate_davis_sequence(seq, *args))
            if progress is not None:
                progress(seq.name)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures: list[Future[list[ObjectScore]]] = [
                pool.submit(_evaluate_davis_sequence, seq, *args) for seq in sequences
            ]
            try:
                for seq, fut in zip(sequences, futures, strict=True):
                    per_seq.append(fut.result())
                    if progress is not None:
                        progress(seq.name)
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
    return BenchResult([o for rows in per_seq for o in rows])


# ----------------------------------------------------------------------------- output


def _fmt(value: float) -> str:
    """Toolkit CSV number format (pandas ``float_format="%.3f"``; NaN is an empty field)."""
    return "" if math.isnan(value) else f"{value:.3f}"


def write_csv_atomic(path: Path, rows: list[list[str]]) -> None:
    """CSV rows with ``\n`` line ends (as the toolkit's pandas output), written atomically."""
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh, lineterminator="\n").writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_results_csv(result: BenchResult, out_dir: Path, split: str) -> tuple[Path, Path]:
    """Write ``global_results-<split>.csv`` and ``per-sequence_results-<split>.csv``.

    Same columns, row labels and 3-decimal format as the toolkit's ``evaluation_method.py``,
    so existing scripts that read its CSVs read ours. Each file is replaced atomically.
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        global_path = out_dir / f"global_results-{split}.csv"
        seq_path = out_dir / f"per-sequence_results-{split}.csv"
        g = result.global_metrics()
        write_csv_atomic(global_path, [list(GLOBAL_COLUMNS), [_fmt(g[c]) for c in GLOBAL_COLUMNS]])
        rows = [list(SEQUENCE_COLUMNS)]
        rows += [[o.name, _fmt(o.j_mean), _fmt(o.f_mean)] for o in result.objects]
        write_csv_atomic(seq_path, rows)
    except OSError as exc:
        raise VosError(f"Cannot write results CSVs to {out_dir}: {exc}") from exc
    return global_path, seq_path


def global_table(result: BenchResult, title: str = "Global results") -> Table:
    """One-row table of the global metrics."""
    table = Table(title=title)
    g = result.global_metrics()
    for col in GLOBAL_COLUMNS:
        table.add_column(col, justify="right")
    table.add_row(*(_fmt(g[c]) or "-" for c in GLOBAL_COLUMNS))
    return table


def per_sequence_table(result: BenchResult, title: str = "Per-sequence results") -> Table:
    """One row per object (``<sequence>_<id>``) with its J and F means."""
    table = Table(title=title)
    table.add_column("Sequence")
    table.add_column("J-Mean", justify="right")
    table.add_column("F-Mean", justify="right")
    for o in result.objects:
        table.add_row(o.name, _fmt(o.j_mean) or "-", _fmt(o.f_mean) or "-")
    return table


def results_table(result: BenchResult, split: str | None = None) -> Group:
    """Global and per-sequence tables, ready for ``rich.console.Console.print``."""
    suffix = f" ({split})" if split else ""
    return Group(
        global_table(result, f"Global results{suffix}"),
        per_sequence_table(result, f"Per-sequence results{suffix}"),
    )
