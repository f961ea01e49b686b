"""Run a jobs file: in order in one process, or shared out over torchrun's ranks.

Every job goes through :func:`~vos_cli.segment.segment_video`, the one pipeline; this module only
builds its requests, keeps the completion records and watches progress. A job that fails is
recorded and the others go on; Ctrl-C or SIGTERM (what torchrun sends the surviving ranks when
one dies) stops the job in hand with its outputs closed, and the next run does it again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from vos_cli.errors import VosError
from vos_cli.jobs.board import Board, connect_board
from vos_cli.jobs.manifest import Job, JobDefaults
from vos_cli.jobs.plan import Batch, Planned, prepare_batch
from vos_cli.jobs.records import done_record, record_path, started_record, write_record
from vos_cli.jobs.report import DONE, FAILED, INTERRUPTED, NOT_RUN, JobResult, write_report
from vos_cli.segment import SegmentSummary, segment_video

#: After an interruption, how long rank 0 waits for the other ranks' last results.
STOP_GRACE_S = 5.0
#: How often a rank adds its frames to the shared count, and rank 0 looks at the board.
POLL_S = 0.5


class BatchAborted(VosError):
    """Rank 0 found problems in the jobs (and lists them); the other ranks stop quietly."""


class Events:
    """What the runner tells the screen, on rank 0 only. These do nothing."""

    def start(self, batch: Batch, processes: int, threads: int) -> None: ...

    def job_started(self, job: Job) -> None: ...

    def job_progress(self, done: int, total: int | None) -> None: ...

    def overall(self, finished: int, frames: int) -> None:
        """``finished`` jobs of this run (any rank) and their frames so far, all ranks."""

    def finished(self, result: JobResult) -> None: ...

    def note(self, job: Job, message: str) -> None: ...


@dataclass
class BatchOutcome:
    is_main: bool
    results: list[JobResult]
    """Every job of the file in its order (rank 0; empty on the others)."""
    report: Path | None
    interrupted: bool
    processes: int = 1
    threads: int = 1

    @property
    def exit_code(self) -> int:
        """130 interrupted, 1 when a job did not succeed, else 0."""
        if self.interrupted:
            return 130
        return 0 if all(r.ok for r in self.results) else 1


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_threads(threads: int | None, local_processes: int) -> int:
    """Torch's intra-op threads: ``threads`` if given, else the cores shared out over this
    machine's processes (K ranks each using every core would fight over them)."""
    import torch

    if threads is not None:
        if threads < 1:
            raise VosError(f"--threads must be 1 or more, got {threads}")
        torch.set_num_threads(threads)
    elif local_processes > 1:
        torch.set_num_threads(max(1, available_cores() // local_processes))
    return torch.get_num_threads()


def _pick_gpu(device: str, board: Board) -> None:
    """Under torchrun each rank on a machine takes its own GPU (``LOCAL_RANK``)."""
    if board.world > 1 and device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_device(board.local_rank % torch.cuda.device_count())


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt as Ctrl-C does, so the job in hand closes its outputs.

    torchrun follows a Ctrl-C with SIGTERM: once stopping, a SIGTERM is not raised again (it
    would interrupt the closing of the outputs); a second Ctrl-C still is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = False

    def handler(signum: int, frame: object) -> None:
        nonlocal stopping
        if stopping and signum == signal.SIGTERM:
            return
        stopping = True
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class _Watcher:
    """Rank 0's view of everyone's results and frames, fed to the screen as they come."""

    def __init__(self, board: Board, events: Events) -> None:
        self.board, self.events = board, events
        self.results: dict[int, JobResult] = {}
        self.seen = 0
        self.last = 0.0

    def poll(self, throttled: bool = False) -> None:
        now = time.monotonic()
        if throttled and now - self.last < POLL_S:
            return
        self.last = now
        for data in self.board.results(self.seen):
            self.seen += 1
            result = JobResult.from_dict(data)
            self.results[result.index] = result
            self.events.finished(result)
        self.events.overall(len(self.results), self.board.frames())

    def wait_for_ranks(self, interrupted: bool) -> bool:
        """Until every rank is done (after an interruption, at most STOP_GRACE_S: a rank that
        died never will be); returns whether the run was interrupted."""
        deadline = time.monotonic() + STOP_GRACE_S if interrupted else None
        while True:
            try:
                if self.board.ranks_done() >= self.board.world:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    break
                self.poll(throttled=True)
                time.sleep(0.1)
            except KeyboardInterrupt:
                interrupted = True
                deadline = deadline or time.monotonic() + STOP_GRACE_S
        with contextlib.suppress(Exception):
            self.poll()
        return interrupted


class _FrameCounter:
    """A job's frames, added to the shared count every POLL_S (not a store call per frame)."""

    def __init__(self, board: Board) -> None:
        self.board = board
        self.added = 0
        self.done = 0
        self.last = time.monotonic()
        self.every = POLL_S if board.world > 1 else 0.0

    def update(self, done: int) -> None:
        self.done = done
        if time.monotonic() - self.last >= self.every:
            self.flush()

    def flush(self) -> None:
        self.board.add_frames(self.done - self.added)
        self.added = self.done
        self.last = time.monotonic()


def run_job(
    planned: Planned,
    board: Board,
    events: Events,
    watcher: _Watcher | None = None,
) -> JobResult:
    """One job through segment_video, with its completion record; never raises for the job's
    own failure (that goes into the result) so the other jobs go on."""
    job = planned.job
    result = JobResult(
        index=job.index,
        line=job.line,
        source=str(job.request.source),
        status=FAILED,
        rank=board.rank,
        outputs=[str(p) for p in job.outputs],
    )
    record = record_path(job)
    counter = _FrameCounter(board)
    notes: list[str] = []

    def progress(done: int, total: int | None) -> None:
        events.job_progress(done, total)
        counter.update(done)
        if watcher is not None:
            watcher.poll(throttled=True)

    def notify(message: str) -> None:
        notes.append(message)
        events.note(job, message)

    events.job_started(job)
    tic = time.perf_counter()
    summary: SegmentSummary | None = None
    try:
        write_record(record, started_record(planned.fingerprint, board.rank))
        summary = segment_video(replace(job.request, force=planned.force), notify, progress)
    except VosError as err:
        result.error = _one_line(str(err)) or type(err).__name__
    except KeyboardInterrupt:
        result.status = INTERRUPTED
    except Exception as err:  # a failing job must not take the others down
        result.error = _one_line(f"{type(err).__name__}: {err}")
    finally:
        with contextlib.suppress(Exception):
            counter.flush()
    result.warnings = notes + (summary.warnings if summary else [])
    if summary is None:  # failed or stopped: how far it got
        result.frames, result.seconds = counter.done, time.perf_counter() - tic
        return result
    result.frames, result.seconds = summary.frames, summary.seconds
    if summary.interrupted:
        result.status = INTERRUPTED
        return result
    try:
        write_record(record, done_record(job, planned.fingerprint, summary, board.rank))
    except OSError as err:
        result.error = f"cannot write the completion record {record}: {err.strerror or err}"
        return result
    result.status = DONE
    return result


def _one_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _work(board: Board, pending: list[Planned], events: Events, watcher: _Watcher | None) -> bool:
    """Claim and run jobs until none is left; True when interrupted."""
    try:
        while True:
            index = board.claim()
            if index >= len(pending):
                return False
            result = run_job(pending[index], board, events, watcher)
            board.post(result.to_dict())
            if watcher is not None:
                watcher.poll()
            if result.status == INTERRUPTED:
                return True
    except KeyboardInterrupt:
        return True


def run_batch(
    jobs_file: Path,
    defaults: JobDefaults,
    *,
    report: Path | None = None,
    force: bool = False,
    threads: int | None = None,
    events: Events | None = None,
) -> BatchOutcome:
    """Run every job of ``jobs_file`` not complete from an earlier run; rank 0 writes the report.

    Alone, the jobs run in the file's order. Under torchrun each rank claims the next job when
    it is free. Raises ManifestError (rank 0) or BatchAborted (the others) when the jobs file
    has problems, before any work.
    """
    events = events or Events()
    board = connect_board()
    quiet = Events()
    try:
        with _signals_interrupt():
            used = set_threads(threads, board.local_world)
            _pick_gpu(defaults.device, board)
            batch: Batch | None = None
            if board.is_main:
                try:
                    batch = prepare_batch(jobs_file, defaults, report, force)
                except BaseException:
                    board.publish_plan(None)
                    raise
                pending = batch.pending
                board.publish_plan(pending)
                events.start(batch, board.world, used)
            else:
                pending = board.fetch_plan()
                if pending is None:
                    raise BatchAborted("rank 0 found problems in the jobs file and lists them")
            watcher = _Watcher(board, events) if board.is_main else None
            interrupted = _work(board, pending, events if board.is_main else quiet, watcher)
            board.rank_done()
            if watcher is None or batch is None:
                return BatchOutcome(False, [], None, interrupted, board.world, used)
            interrupted = watcher.wait_for_ranks(interrupted)
            results = _all_results(batch, watcher.results, pending, board)
            write_report(batch.report, results)
            return BatchOutcome(True, results, batch.report, interrupted, board.world, used)
    finally:
        board.close()


def _all_results(
    batch: Batch, finished: dict[int, JobResult], pending: list[Planned], board: Board
) -> list[JobResult]:
    """One result per job of the file: skipped, finished, or not run (never claimed, or its
    process died before it posted a result)."""
    results = {r.index: r for r in batch.skipped}
    results.update(finished)
    for position, planned in enumerate(pending):
        job = planned.job
        if job.index in results:
            continue
        rank = board.claimant(position)
        results[job.index] = JobResult(
            index=job.index,
            line=job.line,
            source=str(job.request.source),
            status=NOT_RUN,
            rank=rank,
            error="" if rank is None else f"rank {rank} stopped before it finished this job",
            outputs=[str(p) for p in job.outputs],
        )
    return [results[job.index] for job in batch.jobs]
