"""The screen of ``vos segment --jobs``: an overall bar (jobs and frames) above the video's own,
and a line per finished job. Rank 0 only; the bars vanish when the run ends."""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from vos_cli.jobs.manifest import Job
from vos_cli.jobs.plan import Batch
from vos_cli.jobs.report import DONE, FAILED, INTERRUPTED, JobResult
from vos_cli.jobs.runner import Events


def job_label(line: int, source: str) -> str:
    return f"line {line} {Path(source).name}"


def result_line(result: JobResult, ranks: int) -> str:
    """``done line 3 clip.mp4: 120 frames, 8.1 frames/s`` (plain text, no markup)."""
    where = f" (rank {result.rank})" if ranks > 1 and result.rank is not None else ""
    label = job_label(result.line, result.source)
    if result.status == DONE:
        return f"done {label}: {result.frames} frames, {result.fps:.1f} frames/s{where}"
    if result.status == FAILED:
        return f"failed {label}{where}: {result.error}"
    if result.status == INTERRUPTED:
        return f"interrupted {label} after {result.frames} frames{where}"
    return f"{result.status} {label}"


class BatchDisplay(Events):
    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            transient=True,
        )
        self.jobs: TaskID | None = None
        self.video: TaskID | None = None
        self.ranks = 1
        self.skipped = 0
        self.started = time.perf_counter()
        self.video_started = self.started

    def __enter__(self) -> BatchDisplay:
        self.bar.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.bar.__exit__(kind, error, trace)

    def start(self, batch: Batch, processes: int, threads: int) -> None:
        self.ranks = processes
        self.skipped = len(batch.skipped)
        if self.skipped:
            self.bar.console.print(
                f"note: {self.skipped} of {len(batch.jobs)} jobs are complete from an earlier "
                "run: skipped"
            )
        if processes > 1:
            self.bar.console.print(
                f"note: {len(batch.pending)} jobs over {processes} processes, "
                f"{threads} thread(s) each on this one"
            )
        self.jobs = self.bar.add_task(
            "jobs", total=len(batch.jobs), completed=self.skipped, info="0 frames"
        )
        self.started = time.perf_counter()

    def job_started(self, job: Job) -> None:
        label = job_label(job.line, str(job.request.source))
        self.video_started = time.perf_counter()
        if self.video is None:
            self.video = self.bar.add_task(label, total=None, info="")
        else:
            self.bar.reset(self.video, description=label, total=None, info="")

    def job_progress(self, done: int, total: int | None) -> None:
        if self.video is None:
            return
        elapsed = time.perf_counter() - self.video_started
        rate = f"{done / elapsed:.1f} frames/s" if elapsed > 0 else ""
        self.bar.update(self.video, completed=done, total=total, info=rate)

    def overall(self, finished: int, frames: int) -> None:
        if self.jobs is None:
            return
        elapsed = time.perf_counter() - self.started
        rate = f", {frames / elapsed:.1f} frames/s" if elapsed > 0 else ""
        self.bar.update(self.jobs, completed=self.skipped + finished, info=f"{frames} frames{rate}")

    def finished(self, result: JobResult) -> None:
        self.bar.console.print(escape(result_line(result, self.ranks)))
        for warning in result.warnings:
            label = job_label(result.line, result.source)
            self.bar.console.print(escape(f"warning: {label}: {warning}"))

    def note(self, job: Job, message: str) -> None:
        pass  # kept in the result's warnings, printed with it
