"""``vos bench jobs``: throughput of ``vos segment --jobs`` on one machine, per process layout.

The same generated clips are segmented once per layout, P processes (torchrun) x T threads
each, e.g. 1x2 against 2x1 on two cores: whether ranks that share out the clips beat one
process that spreads each frame over every core. Each run is a fresh command, timed from start
to exit, so the figure includes what a user waits for (start-up, model loading, decoding and
writing), not the network alone.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

import vos_cli
from vos_cli.bench.clip import first_frame_mask, iter_clip
from vos_cli.bench.encode import encode_mp4
from vos_cli.bench.numbers import per_second
from vos_cli.errors import VosError
from vos_cli.io.masks import write_mask
from vos_cli.jobs.report import DONE, read_report

DEFAULT_CLIPS = 8
DEFAULT_FRAMES = 60
DEFAULT_HEIGHT = 240
DEFAULT_WIDTH = 426
DEFAULT_LAYOUTS = "1x2,2x1"


@dataclass(frozen=True)
class Layout:
    processes: int
    threads: int

    @property
    def label(self) -> str:
        return f"{self.processes}x{self.threads}"


def parse_layouts(text: str) -> list[Layout]:
    """``"1x2,2x1"`` -> processes x threads per process, each 1 or more."""
    layouts = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        p, sep, t = part.partition("x")
        if not sep or not p.isdigit() or not t.isdigit() or int(p) < 1 or int(t) < 1:
            raise VosError(
                f"--layouts takes PROCESSESxTHREADS pairs like {DEFAULT_LAYOUTS}, got {part!r}"
            )
        layouts.append(Layout(int(p), int(t)))
    if not layouts:
        raise VosError(f"--layouts names no layout (e.g. --layouts {DEFAULT_LAYOUTS})")
    return layouts


@dataclass
class LayoutResult:
    layout: str
    processes: int
    threads: int
    seconds: float
    """From the command's start to its exit."""
    frames: int
    clips: int
    busy_seconds: float
    """The busiest process's time inside its jobs (no start-up, no model loading)."""

    @property
    def fps(self) -> float:
        return per_second(self.frames, self.seconds)

    @property
    def busy_fps(self) -> float:
        return per_second(self.frames, self.busy_seconds)

    @property
    def clips_per_minute(self) -> float:
        return 60 * per_second(self.clips, self.seconds)


@dataclass
class JobsBenchReport:
    clips: int
    frames_per_clip: int
    height: int
    width: int
    objects: int
    device: str
    precision: str
    cores: int
    results: list[LayoutResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for row, result in zip(data["results"], self.results, strict=True):
            row.update(
                fps=result.fps, clips_per_minute=result.clips_per_minute, busy_fps=result.busy_fps
            )
        return data


def make_clips(
    folder: Path, clips: int, frames: int, height: int, width: int, objects: int
) -> Path:
    """``clips`` generated H.264 clips, their first masks and a jobs CSV naming them (outputs
    under ``out/``, relative, so that each layout's copy of the CSV writes its own)."""
    rows = ["source,mask,out"]
    for i in range(clips):
        encode_mp4(iter_clip(frames, height, width, objects, seed=i), folder / f"clip{i}.mp4")
        write_mask(folder / f"clip{i}.png", first_frame_mask(height, width, objects, seed=i))
        rows.append(f"../clip{i}.mp4,../clip{i}.png,out/clip{i}")
    return _write(folder / "jobs.csv", "\n".join(rows) + "\n")


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def layout_command(layout: Layout, jobs_file: Path, options: list[str]) -> list[str]:
    """The command a user would type for this layout (torchrun for more than one process)."""
    vos = ["-m", "vos_cli", "segment", "--jobs", str(jobs_file), "--threads", str(layout.threads)]
    launcher = [sys.executable]
    if layout.processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone"]
        launcher += [f"--nproc_per_node={layout.processes}"]
    return [*launcher, *vos, *options]


def _environment(threads: int) -> dict[str, str]:
    """This vos first on the path (the children import the same code), and the thread count
    for OpenMP as well as torch."""
    root = str(Path(vos_cli.__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    env = dict(os.environ, PYTHONPATH=root + (os.pathsep + path if path else ""))
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def run_layout(layout: Layout, template: Path, options: list[str]) -> LayoutResult:
    """Segment every clip of ``template`` with this layout, in a folder of its own."""
    folder = template.parent / f"run-{layout.label}"
    folder.mkdir()
    jobs_file = _write(folder / "jobs.csv", template.read_text(encoding="utf-8"))
    command = layout_command(layout, jobs_file, options)
    tic = time.perf_counter()
    done = subprocess.run(
        command, env=_environment(layout.threads), capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - tic
    if done.returncode != 0:
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        last = lines[-1] if lines else "no output"
        raise VosError(f"the {layout.label} run failed (exit {done.returncode}): {last}")
    rows = read_report(folder / "jobs-report.csv")
    failed = [r for r in rows if r["status"] != DONE]
    if failed:
        raise VosError(f"the {layout.label} run left {failed[0]['source']}: {failed[0]['error']}")
    frames = sum(int(r["frames"]) for r in rows)
    busy: dict[str, float] = {}
    for r in rows:
        busy[r["rank"]] = busy.get(r["rank"], 0.0) + float(r["seconds"])
    return LayoutResult(
        layout.label,
        layout.processes,
        layout.threads,
        seconds,
        frames,
        len(rows),
        max(busy.values()),
    )


@contextlib.contextmanager
def _work_folder(work: Path | None) -> Iterator[Path]:
    """``work`` (kept, for a look at the outputs; must be new or empty) or a temp folder."""
    if work is None:
        with tempfile.TemporaryDirectory(prefix="vos-bench-jobs-") as tmp:
            yield Path(tmp)
        return
    work = work.expanduser()
    if work.exists() and (not work.is_dir() or any(work.iterdir())):
        raise VosError(f"--work {work} must be a new or empty folder")
    work.mkdir(parents=True, exist_ok=True)
    yield work


def run_jobs_bench(
    *,
    clips: int = DEFAULT_CLIPS,
    frames: int = DEFAULT_FRAMES,
    height: int = DEFAULT_HEIGHT,
    width: int = DEFAULT_WIDTH,
    objects: int = 1,
    layouts: list[Layout] | None = None,
    weights: Path | None = None,
    device: str = "cpu",
    precision: str = "auto",
    size: int | None = None,
    work: Path | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> JobsBenchReport:
    """Time ``vos segment --jobs`` on the same ``clips`` for each layout, in the given order."""
    from vos_cli.jobs.runner import available_cores

    if clips < 1 or frames < 1:
        raise VosError("--clips and --frames must be 1 or more")
    layouts = layouts or parse_layouts(DEFAULT_LAYOUTS)
    options = ["--device", device, "--precision", precision]
    if weights is not None:
        options += ["--weights", str(Path(weights).expanduser().resolve())]
    if size is not None:
        options += ["--size", str(size)]
    report = JobsBenchReport(
        clips, frames, height, width, objects, device, precision, available_cores()
    )
    with _work_folder(work) as folder:
        progress(f"encoding {clips} clips of {frames} frames at {width}x{height}")
        template = make_clips(folder, clips, frames, height, width, objects)
        for layout in layouts:
            progress(f"{layout.processes} process(es) x {layout.threads} thread(s)")
            report.results.append(run_layout(layout, template, options))
    return report


def jobs_table(report: JobsBenchReport) -> Table:
    table = Table(title="vos segment --jobs throughput")
    columns = ("Processes x threads", "Seconds", "Frames/s", "Clips/min", "Speed-up")
    for name in (*columns, "Frames/s in jobs"):
        table.add_column(name, justify="right")
    first = report.results[0].fps if report.results else float("nan")
    for r in report.results:
        table.add_row(
            r.layout,
            f"{r.seconds:.1f}",
            f"{r.fps:.2f}",
            f"{r.clips_per_minute:.1f}",
            f"{r.fps / first:.2f}x",
            f"{r.busy_fps:.2f}",
        )
    table.caption = (
        f"{report.clips} clips x {report.frames_per_clip} frames at {report.width}x"
        f"{report.height}, {report.objects} object(s), {report.device} {report.precision}, "
        f"{report.cores} core(s); each run timed from start to exit (in jobs: the busiest "
        "process's time segmenting, without start-up and model loading)"
    )
    return table
