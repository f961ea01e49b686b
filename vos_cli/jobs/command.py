"""``vos segment --jobs``'s command-line side: run the batch, print, choose the exit code."""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from vos_cli.console import err_console, out_console
from vos_cli.errors import VosError
from vos_cli.jobs.manifest import JobDefaults, ManifestError
from vos_cli.jobs.report import DONE, FAILED, INTERRUPTED, NOT_RUN, SKIPPED
from vos_cli.jobs.runner import BatchAborted, BatchOutcome, Events, run_batch
from vos_cli.segment import parse_objects_option


def _is_main_rank() -> bool:
    return os.environ.get("RANK", "0") in ("", "0")


def job_defaults(options: dict[str, Any]) -> JobDefaults:
    """The command line's options as every row's settings (``--objects 1,3`` parsed, the
    weights' path made absolute so that every rank finds it)."""
    objects, weights = options.get("objects"), options.get("weights")
    return JobDefaults(
        **options
        | {
            "objects": parse_objects_option(objects) if objects else None,
            "weights": Path(os.path.abspath(Path(weights).expanduser())) if weights else None,
        }
    )


def summary_line(outcome: BatchOutcome) -> str:
    """``8 jobs: 5 done, 2 skipped (done earlier), 1 failed; 960 frames -> report.csv``."""
    counts = Counter(r.status for r in outcome.results)
    parts = [f"{counts[DONE]} done"]
    if counts[SKIPPED]:
        parts.append(f"{counts[SKIPPED]} skipped (done earlier)")
    for status in (FAILED, INTERRUPTED, NOT_RUN):
        if counts[status]:
            parts.append(f"{counts[status]} {status}")
    frames = sum(r.frames for r in outcome.results if r.status == DONE)
    return (
        f"{len(outcome.results)} jobs: {', '.join(parts)}; {frames} frames segmented "
        f"-> {outcome.report}"
    )


def segment_jobs(
    jobs_file: Path,
    *,
    per_video: dict[str, object],
    options: dict[str, Any],
    report: Path | None,
    force: bool,
    threads: int | None,
) -> None:
    """Run the batch; exits 0 when every job is done, 1 when one is not, 2 for bad input,
    130 when interrupted."""
    from vos_cli.jobs.display import BatchDisplay

    given = [name for name, value in per_video.items() if value]
    if given:
        column = given[0].lstrip("-").lower()
        raise VosError(f"{given[0]} goes in the jobs file's {column} column, not beside --jobs")
    defaults = job_defaults(options)
    main = _is_main_rank()
    display: contextlib.AbstractContextManager[Events]
    display = BatchDisplay(err_console) if main else contextlib.nullcontext(Events())
    try:
        with display as events:
            outcome = run_batch(
                jobs_file, defaults, report=report, force=force, threads=threads, events=events
            )
    except ManifestError as err:
        for problem in err.problems:
            err_console.print(f"[bold red]error:[/] {escape(problem)}", markup=True)
        err_console.print(f"[bold red]error:[/] {escape(str(err))}", markup=True)
        raise typer.Exit(2) from None
    except BatchAborted:
        raise typer.Exit(2) from None
    if outcome.is_main:
        out_console.print(summary_line(outcome))
    raise typer.Exit(outcome.exit_code)
