"""``vos bench davis17|davis16``: segment a DAVIS split, time it, score it with the toolkit's rules.

The segmentation loop (:func:`~vos_cli.bench.tracking.track_and_write`) is shared with the
YouTube-VOS run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vos_cli.bench.distributed import (
    DistContext,
    gather_outcomes,
    init_distributed,
    run_on_main,
    shutdown,
)
from vos_cli.bench.leak import LeakScore, leak_scores, write_leak_csv
from vos_cli.bench.metrics.driver import evaluate_results
from vos_cli.bench.metrics.report import split_label, write_results_csv
from vos_cli.bench.metrics.stats import BenchResult
from vos_cli.bench.object_size import SizeGroup, size_groups
from vos_cli.bench.timing import RunReport, RunTiming, SequenceTiming, write_timing_csv
from vos_cli.bench.tracking import (
    Progress,
    TrackerSettings,
    counter,
    default_results_dir,
    no_progress,
    track_and_write,
)
from vos_cli.data.davis import DavisSequence, load_davis
from vos_cli.errors import VosError
from vos_cli.io.paths import prepare_output_dir
from vos_cli.weights_registry import resolve_weights

if TYPE_CHECKING:  # torch: imported where a model runs, so --eval-only does without it
    import torch

    from vos_cli.model.agame import AGame

DAVIS_DATASETS = {"davis17": "2017", "davis16": "2016"}

# ----------------------------------------------------------------------------- segmentation


def segment_davis_sequences(
    sequences: Iterable[DavisSequence],
    model: AGame,
    results_dir: Path,
    settings: TrackerSettings,
    progress: Callable[[str], None] | None = None,
) -> list[SequenceTiming]:
    """Write ``results_dir/<seq>/<frame>.png`` for every sequence (semi-supervised protocol).

    Frame 0's annotation is the input, plus any later annotation that introduces new objects
    (see :func:`~vos_cli.inference.sequences.first_appearances`). DAVIS 2016 annotations read as
    object 1, so its results are id-1 palette masks, which the binary scorer accepts.
    ``settings.aggregate_single``: see :mod:`vos_cli.bench.protocol`.
    """
    from vos_cli.inference.sequences import first_appearances

    timings = []
    for seq in sequences:
        n = len(seq.frame_paths)
        masks = first_appearances(seq, n)
        tracker = settings.tracker(model)
        names = [p.stem for p in seq.frame_paths]
        timings.append(
            track_and_write(
                tracker, seq.name, n, seq.read_frame, masks, results_dir / seq.name, names
            )
        )
        if progress is not None:
            progress(seq.name)
    return timings


# ----------------------------------------------------------------------------- the benchmark


@dataclass
class BenchReport(RunReport):
    """What a DAVIS bench run produced (on torchrun ranks other than 0: no scores, no files)."""

    dataset: str
    split: str
    results_dir: Path
    sequences: list[str]
    result: BenchResult | None = None
    size_groups: list[SizeGroup] = field(default_factory=list)
    """The scores of small and large objects (:mod:`vos_cli.bench.object_size`)."""
    note: str | None = None
    leak: list[LeakScore] = field(default_factory=list)
    """False-positive area and late-video J per object (:mod:`vos_cli.bench.leak`)."""


def default_processes() -> int:
    """Scoring workers: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _device(choice: str) -> torch.device:
    from vos_cli.inference.runtime import resolve_device

    return resolve_device(choice)


def _fully_annotated(sequences: list[DavisSequence]) -> bool:
    return all(len(s.annotation_paths) >= len(s.frame_paths) for s in sequences)


def run_davis_bench(
    root: Path,
    *,
    dataset: str = "davis17",
    split: str = "val",
    results_dir: Path | None = None,
    eval_only: bool = False,
    sequences: list[str] | None = None,
    weights: Path | None = None,
    settings: TrackerSettings = TrackerSettings(),
    force: bool = False,
    processes: int | None = None,
    progress: Progress = no_progress,
) -> BenchReport:
    """Segment (unless ``eval_only``) and score a DAVIS split; writes CSVs into the results folder.

    Under torchrun (``WORLD_SIZE`` > 1) the sequences are sharded over the ranks; rank 0 then
    scores everything and writes the CSVs, the other ranks return a report with ``is_main``
    False. A split whose ground truth is withheld (test-dev: first frames only) is segmented and
    not scored; the report's ``note`` says so. ``settings.aggregate_single`` (None: the
    authors' choice for the dataset) is explained in :mod:`vos_cli.bench.protocol`.
    """
    if dataset not in DAVIS_DATASETS:
        raise VosError(f"unknown DAVIS dataset {dataset!r} (choose davis17 or davis16)")
    year = DAVIS_DATASETS[dataset]
    root = Path(root).expanduser()
    results_dir = (
        Path(results_dir) if results_dir is not None else default_results_dir(dataset, split)
    )
    results_dir = results_dir.expanduser()
    workers = processes if processes is not None else default_processes()
    if workers < 1:
        raise VosError(f"--processes must be at least 1, got {workers}")
    settings = settings.for_dataset(dataset)
    if not eval_only:
        settings.check()
    seqs = load_davis(root, split, year, sequences)  # type: ignore[arg-type]
    report = BenchReport(dataset, split, results_dir, [s.name for s in seqs])

    ctx = init_distributed(None if eval_only else _device(settings.device))
    try:
        if not eval_only:
            report.timing = _segment_sharded(
                ctx, seqs, results_dir, root, weights, settings, force, progress
            )
        if not ctx.is_main:
            report.is_main = False
            return report
        if report.timing is not None:
            report.files.append(write_timing_csv(report.timing, results_dir, split))
        if not eval_only and not _fully_annotated(seqs):
            report.note = (
                f"the ground truth of split '{split}' annotates only some frames (withheld); "
                f"results written to {results_dir}, not scored"
            )
            return report
        scored = counter(progress, "score", len(seqs))
        report.result = evaluate_results(seqs, results_dir, workers, progress=scored)
        report.size_groups = size_groups(report.result.objects, seqs)
        report.files[:0] = write_results_csv(report.result, results_dir, split)
        report.leak = leak_scores(seqs, results_dir, binary=year == "2016")
        leak_csv = results_dir / f"leak-{split_label(split)}.csv"
        report.files.append(write_leak_csv(report.leak, leak_csv))
        return report
    finally:
        shutdown(ctx)


def _segment_sharded(
    ctx: DistContext,
    seqs: list[DavisSequence],
    results_dir: Path,
    root: Path,
    weights: Path | None,
    settings: TrackerSettings,
    force: bool,
    progress: Progress,
) -> RunTiming:
    """Every rank segments its share; returns all ranks' timings (on every rank)."""
    from vos_cli.model.factory import load_model

    weights_path = resolve_weights(weights)
    run_on_main(ctx, lambda: prepare_output_dir(results_dir, force, protect=[root, weights_path]))
    mine = ctx.shard(seqs)

    def work() -> tuple[list[SequenceTiming], float]:
        model, _ = load_model(weights_path)
        start = time.perf_counter()
        advance = counter(progress, "segment", len(mine))
        timings = segment_davis_sequences(mine, model, results_dir, settings, advance)
        return timings, time.perf_counter() - start

    outcomes = gather_outcomes(ctx, work)
    order = {s.name: i for i, s in enumerate(seqs)}
    timings = sorted((t for ts, _ in outcomes for t in ts), key=lambda t: order[t.sequence])
    return RunTiming(timings, max(w for _, w in outcomes), processes=ctx.world)
