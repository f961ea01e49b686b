"""Scoring frames, in-memory sequences and DAVIS results folders, sequences spread over processes.

A results folder is read one frame at a time (each PNG decoded once), so memory stays flat in
the number of frames; only per-object statistics travel back from the worker processes.
"""

from __future__ import annotations

import ctypes
import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from vos_cli.bench.metrics.measures import BOUND_TH, boundary_radius, object_measures
from vos_cli.bench.metrics.stats import BenchResult, ObjectScore, SequenceScores
from vos_cli.data.davis import VOID_ID, DavisSequence, read_label_png
from vos_cli.errors import VosError

_MAX_LISTED = 5
_M_TOP_PAD, _M_MMAP_THRESHOLD = -2, -3  # glibc mallopt parameters (malloc.h)


def evaluate_frame(
    gt: np.ndarray,
    pred: np.ndarray,
    num_objects: int,
    *,
    exclude_void: bool = False,
    bound_th: float = BOUND_TH,
) -> tuple[np.ndarray, np.ndarray]:
    """J and F of objects 1..num_objects in one frame (``gt``/``pred`` are HxW id maps)."""
    if gt.shape != pred.shape:
        raise ValueError(f"id map shapes differ: {gt.shape} vs {pred.shape}")
    keep = (gt != VOID_ID) if exclude_void else None
    radius = boundary_radius(gt.shape, bound_th)
    j = np.empty(num_objects)
    f = np.empty(num_objects)
    for k in range(1, num_objects + 1):
        gt_k = gt == k
        pred_k = pred == k
        if keep is not None:
            gt_k &= keep
            pred_k &= keep
        j[k - 1], f[k - 1] = object_measures(gt_k, pred_k, radius)
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


def _listed(items: list[str]) -> str:
    """The first few items, and an ellipsis when there are more."""
    more = "" if len(items) <= _MAX_LISTED else ", ..."
    return ", ".join(items[:_MAX_LISTED]) + more


def _check_results(sequences: list[DavisSequence], results_dir: Path) -> None:
    """Fail early, listing a few of the missing sequence folders or frames."""
    if not results_dir.is_dir():
        raise VosError(f"Results folder {results_dir} does not exist")
    missing_seqs = [s.name for s in sequences if not (results_dir / s.name).is_dir()]
    if missing_seqs:
        raise VosError(
            f"Results folder {results_dir} lacks {len(missing_seqs)} of {len(sequences)} "
            f"sequence folders: {_listed(missing_seqs)}"
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
        raise VosError(
            f"Results folder {results_dir} lacks {len(missing)} frame(s) in {n_seq} "
            f"sequence(s): {_listed(missing)}"
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


def _keep_freed_memory() -> None:
    """Worker start-up: let glibc keep freed frame-sized buffers instead of returning them.

    Decoding and splitting objects allocate and free a few frame-sized arrays per frame. By
    default glibc serves them from fresh mappings or hands them back to the kernel when freed,
    so each one is page-faulted in again: about a quarter of the time on 854x480 frames
    (9.0-10.7 -> 7.1-7.4 ms a frame profiled, beside two training runs). Keeping up to 64 MiB
    is cheap. Does nothing where libc is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 64 << 20)
        libc.mallopt(_M_TOP_PAD, 64 << 20)
    except (OSError, AttributeError):
        pass


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
    torch threads is safe), the longest first so that no worker is left with a long one at
    the end; everything is checked up front so a missing folder or frame fails in seconds,
    not after scoring. ``progress`` is called with each finished sequence name.
    """
    results_dir = Path(results_dir)
    if not sequences:
        raise VosError("No sequences to evaluate")
    for seq in sequences:
        _check_ground_truth(seq)
    _check_results(sequences, results_dir)

    args = (results_dir, exclude_void, bound_th)
    workers = min(max(int(processes), 1), len(sequences))
    per_seq: dict[str, list[ObjectScore]] = {}
    if workers == 1:
        for seq in sequences:
            per_seq[seq.name] = _evaluate_davis_sequence(seq, *args)
            if progress is not None:
                progress(seq.name)
    else:
        longest_first = sorted(sequences, key=lambda s: -len(s.annotation_paths))
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, ctx, initializer=_keep_freed_memory) as pool:
            futures: dict[Future[list[ObjectScore]], str] = {
                pool.submit(_evaluate_davis_sequence, seq, *args): seq.name for seq in longest_first
            }
            try:
                for fut in as_completed(futures):
                    per_seq[futures[fut]] = fut.result()
                    if progress is not None:
                        progress(futures[fut])
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
    return BenchResult([o for seq in sequences for o in per_seq[seq.name]])
