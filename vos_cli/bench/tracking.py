"""The segmentation loop of the dataset benchmarks (DAVIS and YouTube-VOS alike).

Frames are decoded a few ahead in a thread and PNGs are encoded in another, so the end-to-end
time measures a pipeline a user would run, while the model time counts ``Tracker.step`` alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vos_cli.bench import protocol
from vos_cli.bench.metrics.report import split_label
from vos_cli.bench.timing import SequenceTiming
from vos_cli.errors import VosError, reworded
from vos_cli.io.masks import NamedPngWriter
from vos_cli.io.video import Prefetcher

if TYPE_CHECKING:  # torch: imported where a model runs, so scoring alone does without it
    from vos_cli.inference.tracker import Tracker
    from vos_cli.model.agame import AGame

Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)`` with phase ``"segment"`` or ``"score"``."""


def no_progress(phase: str, done: int, total: int) -> None:
    return None


def default_results_dir(dataset: str, split: str) -> Path:
    """``results/<dataset>-<split>`` under the current directory."""
    return Path("results") / f"{dataset}-{split_label(split)}"


@dataclass(frozen=True)
class TrackerSettings:
    """How every sequence of a run is tracked (``--device``, ``--precision``, ``--size``,
    ``--flip``, ``--[no-]aggregate-single``), passed down as one value.

    ``aggregate_single`` None means the dataset's protocol (:mod:`vos_cli.bench.protocol`);
    a benchmark settles it with :meth:`for_dataset` before tracking.
    """

    device: str = "auto"
    precision: str = "auto"
    size: int | None = None
    flip: bool = False
    aggregate_single: bool | None = None

    def for_dataset(self, dataset: str) -> TrackerSettings:
        """These settings with ``aggregate_single`` resolved to ``dataset``'s protocol."""
        return replace(
            self, aggregate_single=protocol.aggregate_single(dataset, self.aggregate_single)
        )

    def check(self) -> None:
        """Fail on bad settings before any folder is made or model loaded."""
        from vos_cli.inference.runtime import resolve_device, resolve_precision
        from vos_cli.inference.tracker import check_size

        resolve_precision(self.precision, resolve_device(self.device))
        check_size(self.size)

    def tracker(self, model: AGame) -> Tracker:
        """A fresh tracker for one sequence."""
        from vos_cli.inference.tracker import Tracker

        return Tracker(
            model,
            device=self.device,
            precision=self.precision,
            size=self.size,
            flip=self.flip,
            aggregate_single=bool(self.aggregate_single),
        )


def counter(progress: Progress, phase: str, total: int) -> Callable[[str], None]:
    """Report ``phase`` at 0 of ``total`` now; the callback returned reports one more done."""
    done = 0
    progress(phase, 0, total)

    def advance(name: str) -> None:
        nonlocal done
        done += 1
        progress(phase, done, total)

    return advance


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
    except VosError as exc:  # same class: a failed write stays a failure (exit code 1)
        raise reworded(exc, f"sequence {name}: {exc}") from None
    return SequenceTiming(
        name, num_frames, tracker.num_objects, model_seconds, time.perf_counter() - start
    )
