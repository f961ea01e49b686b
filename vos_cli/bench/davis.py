"""``vos bench davis17|davis16``: segment a DAVIS split, time it, score it with the toolkit's rules.

The segmentation loop here (:func:`track_and_write`) is shared with the YouTube-VOS run: frames are
decoded a few ahead in a thread and PNGs are encoded in another, so the end-to-end time measures a
pipeline a user would run, while the model time counts ``Tracker.step`` alone.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.table import Table

from vos_cli.bench import protocol
from vos_cli.bench.distributed import (
    DistContext,
    gather_outcomes,
    init_distributed,
    run_on_main,
    shutdown,
)
from vos_cli.data.davis import DavisSequence, load_davis
from vos_cli.errors import VosError
from vos_cli.inference.adapt_config import AdaptConfig
from vos_cli.inference.runtime import resolve_device, resolve_precision
from vos_cli.inference.sequences import first_appearances
from vos_cli.inference.tracker import Tracker, check_size
from vos_cli.io.masks import write_mask
from vos_cli.io.paths import prepare_output_dir
from vos_cli.io.video import Prefetcher
from vos_cli.metrics import BenchResult, evaluate_results, write_csv_atomic, write_results_csv
from vos_cli.model.agame import AGame
from vos_cli.model.factory import load_model
from vos_cli.weights_registry import resolve_weights

DAVIS_DATASETS = {"davis17": "2017", "davis16": "2016"}
TIMING_COLUMNS = ("sequence", "frames", "model_fps", "total_fps", "adapt_seconds")

Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)`` with phase ``"segment"`` or ``"score"``."""


def no_progress(phase: str, done: int, total: int) -> None:
    return None


# ----------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class SequenceTiming:
    """How long one sequence took: the network alone, and decode + network + PNG writing.

    ``adapt_seconds`` is the one-off first-frame adaptation (``--adapt``): in the end-to-end
    time, not in the network's per-frame time.
    """

    sequence: str
    frames: int
    objects: int
    model_seconds: float
    total_seconds: float
    adapt_seconds: float = 0.0

    @property
    def model_fps(self) -> float:
        return self.frames / self.model_seconds if self.model_seconds > 0 else float("nan")

    @property
    def total_fps(self) -> float:
        return self.frames / self.total_seconds if self.total_seconds > 0 else float("nan")


@dataclass
class RunTiming:
    """Timings of a whole run.

    ``wall_seconds`` is the segmentation phase's wall clock (the slowest rank's under torchrun),
    so ``run_fps`` is the throughput of the whole run, all processes together; ``model_fps`` is
    frames per second of ``Tracker.step`` time, i.e. what one process's network sustains.
    """

    sequences: list[SequenceTiming]
    wall_seconds: float
    processes: int = 1

    @property
    def frames(self) -> int:
        return sum(t.frames for t in self.sequences)

    @property
    def model_seconds(self) -> float:
        return sum(t.model_seconds for t in self.sequences)

    @property
    def adapt_seconds(self) -> float:
        return sum(t.adapt_seconds for t in self.sequences)

    @property
    def model_fps(self) -> float:
        s = self.model_seconds
        return self.frames / s if s > 0 else float("nan")

    @property
    def run_fps(self) -> float:
        return self.frames / self.wall_seconds if self.wall_seconds > 0 else float("nan")


def _fps(value: float) -> str:
    return "-" if value != value else f"{value:.2f}"  # NaN check without math import


def write_timing_csv(timing: RunTiming, out_dir: Path, split: str) -> Path:
    """``timing-<split>.csv``: one row per sequence (:data:`TIMING_COLUMNS`)."""
    path = Path(out_dir) / f"timing-{split}.csv"
    rows = [list(TIMING_COLUMNS)]
    rows += [
        [
            t.sequence,
            str(t.frames),
            f"{t.model_fps:.3f}",
            f"{t.total_fps:.3f}",
            f"{t.adapt_seconds:.3f}",
        ]
        for t in timing.sequences
    ]
    try:
        write_csv_atomic(path, rows)
    except OSError as exc:
        raise VosError(f"Cannot write {path}: {exc.strerror or exc}") from None
    return path


def timing_table(timing: RunTiming, title: str = "Speed") -> Table:
    """Per-sequence frames/s and a bold total row (model-only and end to end).

    With first-frame adaptation, an "Adapt s" column gives its one-off seconds per sequence.
    """
    adapted = timing.adapt_seconds > 0
    table = Table(title=title)
    table.add_column("Sequence")
    table.add_column("Frames", justify="right")
    table.add_column("Objects", justify="right")
    table.add_column("Model fps", justify="right")
    table.add_column("Total fps", justify="right")
    if adapted:
        table.add_column("Adapt s", justify="right")
    for t in timing.sequences:
        row = [t.sequence, str(t.frames), str(t.objects), _fps(t.model_fps), _fps(t.total_fps)]
        table.add_row(*row, *([f"{t.adapt_seconds:.1f}"] if adapted else []))
    label = "all" if timing.processes == 1 else f"all ({timing.processes} processes)"
    total = [label, str(timing.frames), "", _fps(timing.model_fps), _fps(timing.run_fps)]
    table.add_row(
        *total,
        *([f"{timing.adapt_seconds:.1f}"] if adapted else []),
        style="bold",
        end_section=True,
    )
    return table


# ----------------------------------------------------------------------------- segmentation


class NamedPngWriter:
    """Writes ``<folder>/<stem>.png`` palette masks from one background thread.

    Unlike :class:`~vos_cli.io.masks.MaskWriter` the file names are the caller's (the dataset's
    frame names, e.g. YouTube-VOS's ``00005``), which the official scorers look up. At most
    ``maxsize`` masks wait, so a slow disk slows the loop instead of filling memory.
    """

    def __init__(self, folder: Path, maxsize: int = 8) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VosError(f"Cannot create folder {self.folder}: {exc.strerror or exc}") from None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="png-writer")
        self._pending: deque[Future[None]] = deque()
        self._maxsize = maxsize
        self.written = 0

    def write(self, stem: str, label_map: np.ndarray) -> None:
        """Queue a mask; the array must not be modified afterwards (tracker output never is)."""
        while len(self._pending) >= self._maxsize:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(write_mask, self.folder / f"{stem}.png", label_map))
        self.written += 1

    def close(self) -> None:
        """Wait for every queued PNG; re-raises the first write error."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        """Finish quietly (used while another exception propagates)."""
        with contextlib.suppress(Exception):
            self.close()


def _writable(frame: np.ndarray) -> np.ndarray:
    return frame if frame.flags.writeable else frame.copy()


def track_and_write(
    tracker: Tracker,
    name: str,
    num_frames: int,
    read_frame: Callable[[int], np.ndarray],
    masks: dict[int, np.ndarray],
    out_dir: Path,
    output_names: Sequence[str | None],
) -> SequenceTiming:
    """Run one sequence through a fresh tracker, writing frame ``i`` as ``output_names[i]``.png.

    ``masks`` maps frame indices to the label maps given there (first frame, later first
    appearances); a ``None`` name means the frame is tracked but not written. Errors name the
    sequence, as a run over hundreds of them would otherwise not say which one failed.
    """
    try:
        for index, labels in sorted(masks.items()):
            tracker.add_mask(index, _writable(labels))
        writer = NamedPngWriter(out_dir)
        start = time.perf_counter()
        model_seconds = 0.0
        try:
            # writable copies (PIL arrays are read-only, which torch.from_numpy warns about),
            # made in the decode thread
            frames = (_writable(read_frame(i)) for i in range(num_frames))
            with Prefetcher(frames, maxsize=4, name=f"decode-{name}") as prefetched:
                for i, frame in enumerate(prefetched):
                    tic = time.perf_counter()
                    labels = tracker.step(frame)  # returns a CPU array: CUDA work is finished
                    model_seconds += time.perf_counter() - tic
                    stem = output_names[i]
                    if stem is not None:
                        writer.write(stem, labels)
        except BaseException:
            writer.abort()
            raise
        writer.close()
    except VosError as exc:
        raise VosError(f"sequence {name}: {exc}") from None
    adapt_seconds = tracker.adapt_report.seconds if tracker.adapt_report is not None else 0.0
    return SequenceTiming(
        name,
        num_frames,
        tracker.num_objects,
        model_seconds - adapt_seconds,
        time.perf_counter() - start,
        adapt_seconds,
    )


def segment_davis_sequences(
    sequences: Iterable[DavisSequence],
    model: AGame,
    results_dir: Path,
    *,
    device: str = "auto",
    precision: str = "auto",
    size: int | None = None,
    adapt: AdaptConfig | None = None,
    flip: bool = False,
    aggregate_single: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[SequenceTiming]:
    """Write ``results_dir/<seq>/<frame>.png`` for every sequence (semi-supervised protocol).

    Frame 0's annotation is the input, plus any later annotation that introduces new objects
    (see :func:`~vos_cli.inference.sequences.first_appearances`). DAVIS 2016 annotations read as
    object 1, so its results are id-1 palette masks, which the binary scorer accepts.
    ``aggregate_single``: see :mod:`vos_cli.bench.protocol`.
    """
    timings = []
    for seq in sequences:
        n = len(seq.frame_paths)
        masks = first_appearances(seq, n)
        tracker = Tracker(
            model,
            device=device,
            precision=precision,
            size=size,
            adapt=adapt,
            flip=flip,
            aggregate_single=aggregate_single,
        )
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
class BenchReport:
    """What a DAVIS bench run produced (on torchrun ranks other than 0: no scores, no files)."""

    dataset: str
    split: str
    results_dir: Path
    sequences: list[str]
    result: BenchResult | None = None
    timing: RunTiming | None = None
    files: list[Path] = field(default_factory=list)
    is_main: bool = True
    note: str | None = None


def default_results_dir(dataset: str, split: str) -> Path:
    """``results/<dataset>-<split>`` under the current directory."""
    return Path("results") / f"{dataset}-{split}"


def default_processes() -> int:
    """Scoring workers: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def check_run_options(device: str, precision: str, size: int | None) -> None:
    """Fail on bad --device/--precision/--size before any folder is made or model loaded."""
    resolve_precision(precision, resolve_device(device))
    check_size(size)


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
    device: str = "auto",
    precision: str = "auto",
    size: int | None = None,
    adapt: AdaptConfig | None = None,
    flip: bool = False,
    aggregate_single: bool | None = None,
    force: bool = False,
    processes: int | None = None,
    progress: Progress = no_progress,
) -> BenchReport:
    """Segment (unless ``eval_only``) and score a DAVIS split; writes CSVs into the results folder.

    Under torchrun (``WORLD_SIZE`` > 1) the sequences are sharded over the ranks; rank 0 then
    scores everything and writes the CSVs, the other ranks return a report with ``is_main``
    False. A split whose ground truth is withheld (test-dev: first frames only) is segmented and
    not scored; the report's ``note`` says so. ``aggregate_single`` (default: the authors'
    choice for the dataset) is explained in :mod:`vos_cli.bench.protocol`.
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
    if not eval_only:
        check_run_options(device, precision, size)
    seqs = load_davis(root, split, year, sequences)  # type: ignore[arg-type]
    report = BenchReport(dataset, split, results_dir, [s.name for s in seqs])

    ctx = init_distributed(resolve_device(device))
    try:
        if not eval_only:
            report.timing = _segment_sharded(
                ctx,
                seqs,
                results_dir,
                root,
                weights,
                device,
                precision,
                size,
                force,
                progress,
                adapt,
                flip,
                protocol.aggregate_single(dataset, aggregate_single),
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
        done = 0

        def scored(name: str) -> None:
            nonlocal done
            done += 1
            progress("score", done, len(seqs))

        progress("score", 0, len(seqs))
        report.result = evaluate_results(seqs, results_dir, workers, progress=scored)
        report.files[:0] = write_results_csv(report.result, results_dir, split)
        return report
    finally:
        shutdown(ctx)


def _segment_sharded(
    ctx: DistContext,
    seqs: list[DavisSequence],
    results_dir: Path,
    root: Path,
    weights: Path | None,
    device: str,
    precision: str,
    size: int | None,
    force: bool,
    progress: Progress,
    adapt: AdaptConfig | None = None,
    flip: bool = False,
    aggregate_single: bool = False,
) -> RunTiming:
    """Every rank segments its share; returns all ranks' timings (on every rank)."""
    weights_path = resolve_weights(weights)
    run_on_main(ctx, lambda: prepare_output_dir(results_dir, force, protect=[root, weights_path]))
    mine = ctx.shard(seqs)

    def work() -> tuple[list[SequenceTiming], float]:
        model, _ = load_model(weights_path)
        start = time.perf_counter()
        done = 0

        def advance(name: str) -> None:
            nonlocal done
            done += 1
            progress("segment", done, len(mine))

        progress("segment", 0, len(mine))
        timings = segment_davis_sequences(
            mine,
            model,
            results_dir,
            device=device,
            precision=precision,
            size=size,
            adapt=adapt,
            flip=flip,
            aggregate_single=aggregate_single,
            progress=advance,
        )
        return timings, time.perf_counter() - start

    outcomes = gather_outcomes(ctx, work)
    order = {s.name: i for i, s in enumerate(seqs)}
    timings = sorted((t for ts, _ in outcomes for t in ts), key=lambda t: order[t.sequence])
    return RunTiming(timings, max(w for _, w in outcomes), processes=ctx.world)
