"""What a run of the jobs file does: skip what is complete, refuse to overwrite what is not ours.

Runs on rank 0 only, before any work; its problems join the CSV's in one list.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vos_cli.errors import VosError
from vos_cli.jobs.manifest import Job, JobDefaults, ManifestError, load_manifest
from vos_cli.jobs.records import fingerprint, is_complete, owned_outputs, read_record, record_path
from vos_cli.jobs.report import SKIPPED, JobResult, is_report
from vos_cli.weights_registry import resolve_weights


@dataclass
class Planned:
    """A job this run will do."""

    job: Job
    fingerprint: dict[str, Any]
    force: bool
    """Overwrite its outputs: they are an earlier run's (or ``--force`` was given)."""


@dataclass
class Batch:
    jobs_file: Path
    report: Path
    jobs: list[Job]
    pending: list[Planned] = field(default_factory=list)
    skipped: list[JobResult] = field(default_factory=list)


def default_report_path(jobs_file: Path) -> Path:
    """``shoot.csv`` -> ``shoot-report.csv`` beside it."""
    return jobs_file.with_name(f"{jobs_file.stem}-report.csv")


def prepare_batch(
    jobs_file: Path, defaults: JobDefaults, report: Path | None = None, force: bool = False
) -> Batch:
    """Read and check the jobs file, sort its jobs into done-earlier and to-do.

    Raises :class:`ManifestError` with every problem (CSV, weights, outputs in the way, the
    report's path), having written nothing.
    """
    jobs_file = Path(jobs_file).expanduser()
    jobs = load_manifest(jobs_file, defaults)
    name = jobs_file.name
    problems: list[str] = []
    report = Path(
        os.path.abspath(report.expanduser() if report else default_report_path(jobs_file))
    )
    _check_report(report, jobs, force, problems)
    weights = defaults.weights or Path("default-weights")
    try:
        weights = resolve_weights(defaults.weights)
        _check_weights(weights)
    except VosError as err:
        problems.append(str(err))  # and go on: the outputs' problems are listed too
    batch = Batch(jobs_file=jobs_file, report=report, jobs=jobs)
    for job in jobs:
        fp = fingerprint(job, weights)
        record = read_record(record_path(job))
        if is_complete(record, fp):
            batch.skipped.append(_skipped(job, record))
            continue
        ours = owned_outputs(record)
        in_the_way = False
        for column, path in job.output_columns.items():
            state = _occupied(path, job)
            if state == "wrong kind":
                kind = "folder" if path in job.folder_outputs() else "file"
                problems.append(f"{name}:{job.line}: {column} {path} exists and is not a {kind}")
            elif state and str(path) not in ours and not force:
                problems.append(
                    f"{name}:{job.line}: {column} {path} already exists and is not from an "
                    "earlier run of these jobs; use --force to overwrite it, or remove it"
                )
            in_the_way = in_the_way or bool(state)
        batch.pending.append(Planned(job, fp, force=force or in_the_way))
    if problems:
        raise ManifestError(problems)
    return batch


def _occupied(path: Path, job: Job) -> str:
    """'' (free), 'exists', or 'wrong kind' (a file where a folder goes, or the reverse)."""
    if path in job.folder_outputs():
        if path.is_dir():
            return "exists" if any(path.iterdir()) else ""
        return "wrong kind" if path.exists() else ""
    if path.is_dir():
        return "wrong kind"
    return "exists" if path.exists() or path.is_symlink() else ""


def _check_report(report: Path, jobs: list[Job], force: bool, problems: list[str]) -> None:
    key = report.resolve(strict=False)
    for job in jobs:
        paths = [job.request.source, *(p for _, p in job.request.masks), *job.outputs]
        if any(p.resolve(strict=False) == key for p in paths):
            problems.append(f"the report {report} is also a path of line {job.line}")
            return
    if report.is_dir():
        problems.append(f"the report {report} is a folder")
    elif report.exists() and not force and not is_report(report):
        problems.append(
            f"the report {report} exists and is not a report of vos; use --force to replace "
            "it, or name another with --report"
        )


def _check_weights(weights: Path) -> None:
    """Load the weights once here: a bad file would otherwise fail every job, one by one."""
    from vos_cli.model.factory import load_model

    load_model(weights)


def _skipped(job: Job, record: dict[str, Any]) -> JobResult:
    return JobResult(
        index=job.index,
        line=job.line,
        source=str(job.request.source),
        status=SKIPPED,
        frames=int(record.get("frames", 0)),
        seconds=float(record.get("seconds", 0.0)),
        warnings=list(record.get("warnings", [])),
        outputs=[str(p) for p in job.outputs],
    )
