"""The per-video report: one CSV row per job, in the jobs file's order."""

from __future__ import annotations

import contextlib
import csv
import io
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vos_cli.errors import VosError
from vos_cli.io.atomic import temp_beside

DONE = "done"
"""Segmented by this run."""
SKIPPED = "skipped"
"""Complete from an earlier run (its completion record checked); not run again."""
FAILED = "failed"
"""Raised an error; the other jobs went on. A rerun tries it again."""
INTERRUPTED = "interrupted"
"""Stopped by Ctrl-C or a signal part-way; a rerun does it again."""
NOT_RUN = "not run"
"""Never started (the run was stopped first), or its process died without a result."""

STATUSES = (DONE, SKIPPED, FAILED, INTERRUPTED, NOT_RUN)
HEADER = (
    "line",
    "source",
    "status",
    "frames",
    "fps",
    "seconds",
    "rank",
    "error",
    "warnings",
    "outputs",
)


@dataclass
class JobResult:
    index: int
    line: int
    source: str
    status: str
    frames: int = 0
    seconds: float = 0.0
    rank: int | None = None
    error: str = ""
    warnings: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.status in (DONE, SKIPPED)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobResult:
        return cls(**data)

    def row(self) -> list[str]:
        return [
            str(self.line),
            self.source,
            self.status,
            str(self.frames),
            f"{self.fps:.2f}",
            f"{self.seconds:.3f}",
            "" if self.rank is None else str(self.rank),
            self.error,
            " | ".join(self.warnings),
            ";".join(self.outputs),
        ]


def is_report(path: Path) -> bool:
    """Whether ``path`` holds a report of ours (so a rerun may replace it without --force)."""
    try:
        with path.open(encoding="utf-8", newline="") as f:
            first = next(csv.reader(f), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return first is not None and tuple(first) == HEADER


def write_report(path: Path, results: list[JobResult]) -> Path:
    """Write the report atomically (a reader never sees half of it)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(HEADER)
    for result in sorted(results, key=lambda r: r.index):
        writer.writerow(result.row())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = temp_beside(path)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                f.write(text.getvalue())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as err:
        raise VosError(f"cannot write the report {path}: {err.strerror or err}") from None
    return path


def read_report(path: Path) -> list[dict[str, str]]:
    """The report's rows as dicts (for tests and the benchmark)."""
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))
