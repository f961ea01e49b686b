"""How long a benchmark run took, per sequence and in all: the CSV and the table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

from vos_cli.bench.metrics.report import split_label, write_csv_atomic
from vos_cli.errors import WriteError

TIMING_COLUMNS = ("sequence", "frames", "model_fps", "total_fps")


@dataclass(frozen=True)
class SequenceTiming:
    """How long one sequence took: the network alone, and decode + network + PNG writing."""

    sequence: str
    frames: int
    objects: int
    model_seconds: float
    total_seconds: float

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
    def model_fps(self) -> float:
        s = self.model_seconds
        return self.frames / s if s > 0 else float("nan")

    @property
    def run_fps(self) -> float:
        return self.frames / self.wall_seconds if self.wall_seconds > 0 else float("nan")


@dataclass(kw_only=True)
class RunReport:
    """What every dataset run reports; on torchrun ranks other than 0 only ``is_main`` False."""

    timing: RunTiming | None = None
    files: list[Path] = field(default_factory=list)
    is_main: bool = True


def _fps(value: float) -> str:
    return "-" if value != value else f"{value:.2f}"  # NaN check without math import


def write_timing_csv(timing: RunTiming, out_dir: Path, split: str) -> Path:
    """``timing-<split>.csv``: one row per sequence (:data:`TIMING_COLUMNS`)."""
    path = Path(out_dir) / f"timing-{split_label(split)}.csv"
    rows = [list(TIMING_COLUMNS)]
    rows += [
        [
            t.sequence,
            str(t.frames),
            f"{t.model_fps:.3f}",
            f"{t.total_fps:.3f}",
        ]
        for t in timing.sequences
    ]
    try:
        write_csv_atomic(path, rows)
    except OSError as exc:
        raise WriteError(f"Cannot write {path}: {exc.strerror or exc}") from None
    return path


def timing_table(timing: RunTiming, title: str = "Speed") -> Table:
    """Per-sequence frames/s and a bold total row (model-only and end to end)."""
    table = Table(title=title)
    table.add_column("Sequence")
    for name in ("Frames", "Objects", "Model fps", "Total fps"):
        table.add_column(name, justify="right")
    for t in timing.sequences:
        row = [t.sequence, str(t.frames), str(t.objects), _fps(t.model_fps), _fps(t.total_fps)]
        table.add_row(*row)
    label = "all" if timing.processes == 1 else f"all ({timing.processes} processes)"
    total = [label, str(timing.frames), "", _fps(timing.model_fps), _fps(timing.run_fps)]
    table.add_row(*total, style="bold", end_section=True)
    return table
