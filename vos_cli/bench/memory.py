"""``vos bench memory``: does ``vos segment`` stream, i.e. is its peak memory flat in video length?

For each length a generated clip is encoded to an H.264 mp4 frame by frame (a 10,000-frame
854x480 clip held in memory would be 12 GB), then the real CLI segments it in a fresh child
process, so no allocator caches or imported modules carry over from one length to the next.

The peak is the child's ``ru_maxrss`` from ``wait4``, which sees the whole life of the process,
including its exit (``vos segment`` gains ~100 MB of shared-library pages while tearing down,
too late for any sampling of ``/proc`` to catch reliably). On Linux ``exec`` carries the
spawning process's own lifetime peak into the child's ``ru_maxrss``, though, so a child started
straight from this process (which may hold torch, or be a test runner) could report this
process's peak instead of its own. Hence a small fresh interpreter, holding nothing, starts and
reaps ``vos segment`` and hands its rusage back. ``ru_maxrss`` is the larger of the process and
its reaped children (the ffmpeg helpers), never their sum; those helpers are far smaller.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.table import Table

from vos_cli.bench.clip import first_frame_mask, iter_clip
from vos_cli.bench.encode import encode_mp4
from vos_cli.bench.numbers import parse_counts, per_second
from vos_cli.bench.rss import ru_maxrss_mb
from vos_cli.errors import VosError
from vos_cli.inference.tracker import check_size
from vos_cli.io.masks import write_mask

DEFAULT_LENGTHS = (100, 10_000)
DEFAULT_HEIGHT = 480
DEFAULT_WIDTH = 854
DEFAULT_OBJECTS = 1
#: A longer video may peak this much (as a fraction) above the first length and still pass.
TOLERANCE = 0.05
_POLL_S = 0.05


def parse_lengths(text: str) -> list[int]:
    """``"100,10000"`` -> [100, 10000]: the video lengths to compare, the first the reference."""
    return parse_counts(text, "--lengths", "100,10000", 1, None)


# ----------------------------------------------------------------------------- results


@dataclass
class MemoryRow:
    """One video length: the ``vos segment`` run on it."""

    frames: int
    seconds: float  # the whole child process: start-up, model load, decode, network, PNGs
    peak_rss_mb: float  # the vos segment process's ru_maxrss
    ratio: float  # peak_rss_mb over the first length's

    @property
    def fps(self) -> float:
        return per_second(self.frames, self.seconds)


@dataclass
class MemoryReport:
    """Setup and per-length rows of a memory run (``to_dict`` is the ``--json`` content)."""

    height: int
    width: int
    objects: int
    weights: str | None
    size: int | None
    device: str
    precision: str
    overlay: bool
    tolerance: float = TOLERANCE
    rows: list[MemoryRow] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Streaming: no length peaks more than ``tolerance`` above the first one."""
        return all(r.ratio <= 1.0 + self.tolerance for r in self.rows)

    @property
    def worst(self) -> MemoryRow | None:
        """The length that peaked highest against the first (the first itself when alone)."""
        others = self.rows[1:] or self.rows
        return max(others, key=lambda r: r.ratio, default=None)

    def verdict(self) -> str:
        """One line: passed or failed, and by how much, for the end of the CLI's output."""
        worst, first = self.worst, self.rows[0] if self.rows else None
        if worst is None or first is None:
            return "no runs"
        word = "PASSED" if self.passed else "FAILED"
        return (
            f"{word}: peak RSS at {worst.frames} frames is x{worst.ratio:.3f} that at "
            f"{first.frames} frames ({worst.peak_rss_mb:.0f} vs {first.peak_rss_mb:.0f} MB; "
            f"limit x{1 + self.tolerance:.2f})"
        )

    def to_dict(self) -> dict:
        data = asdict(self)
        data["rows"] = [{**asdict(r), "fps": r.fps} for r in self.rows]
        data["passed"] = self.passed
        return data


def memory_table(report: MemoryReport) -> Table:
    """The rows as a rich table, setup in the caption."""
    table = Table(title="Memory (vos segment, one process per length)")
    for name in ("Frames", "Seconds", "Frames/s", "Peak RSS MB", "vs first"):
        table.add_column(name, justify="right")
    for r in report.rows:
        table.add_row(
            str(r.frames),
            f"{r.seconds:.1f}",
            f"{r.fps:.2f}",
            f"{r.peak_rss_mb:.1f}",
            f"x{r.ratio:.3f}",
        )
    options = [f"{report.objects} object(s)", report.device, report.precision]
    if report.size is not None:
        options.append(f"--size {report.size}")
    if report.overlay:
        options.append("with overlay video")
    table.caption = (
        f"generated clip, {report.width}x{report.height}, {', '.join(options)}; "
        f"{report.weights or 'shipped model'}; peak RSS = the segment process's ru_maxrss"
    )
    return table


# ----------------------------------------------------------------------------- the benchmark


def _last_line(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _describe_exit(code: int) -> str:
    """``exit code 2``, or ``killed by SIGKILL`` (what the OOM killer sends) for a signal."""
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


# Run as ``python -c _REAPER ARGV...``: a process whose own peak is a few MB starts ARGV, reaps
# it with wait4 and prints its exit code and ru_maxrss as JSON (see the module docstring).
# SIGINT is ignored only after the start, so the child keeps its default Ctrl-C handling.
_REAPER = """\
import json, os, signal, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
signal.signal(signal.SIGINT, signal.SIG_IGN)
_, status, usage = os.wait4(child.pid, 0)
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "maxrss": usage.ru_maxrss}))
"""


def _run_child(argv: list[str], stderr_path: Path) -> tuple[int, float, float]:
    """Run ``argv`` to its end: (exit code, wall seconds, peak RSS MB); stderr to a file.

    The reaper and the child run in a session (and process group) of their own, so if this
    process is interrupted or fails while waiting, both are killed rather than left running.
    """
    with open(stderr_path, "wb") as err:
        tic = time.perf_counter()
        reaper = subprocess.Popen(
            [sys.executable, "-c", _REAPER, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
        try:
            said, _ = reaper.communicate()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(reaper.pid, signal.SIGKILL)
            reaper.wait()
            raise
        seconds = time.perf_counter() - tic
    try:
        result = json.loads(said.decode("utf-8", errors="replace").strip().splitlines()[-1])
        return int(result["code"]), seconds, ru_maxrss_mb(int(result["maxrss"]))
    except (ValueError, IndexError, KeyError, TypeError):
        line = _last_line(stderr_path) or _describe_exit(reaper.returncode)
        raise VosError(f"the process that runs vos segment failed: {line}") from None


def _segment_argv(
    clip: Path,
    mask: Path,
    out: Path,
    overlay: Path | None,
    weights: Path | None,
    size: int | None,
    device: str,
    precision: str,
) -> list[str]:
    argv = [sys.executable, "-m", "vos_cli", "segment", str(clip), "--mask", str(mask)]
    argv += ["--out", str(out)]
    if overlay is not None:
        argv += ["--overlay", str(overlay)]
    if weights is not None:
        argv += ["--weights", str(Path(weights).expanduser())]
    if size is not None:
        argv += ["--size", str(size)]
    if device != "auto":
        argv += ["--device", device]
    if precision != "auto":
        argv += ["--precision", precision]
    return argv


def run_memory_bench(
    lengths: Sequence[int] = DEFAULT_LENGTHS,
    *,
    height: int = DEFAULT_HEIGHT,
    width: int = DEFAULT_WIDTH,
    objects: int = DEFAULT_OBJECTS,
    weights: Path | None = None,
    size: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    overlay: bool = False,
    progress: Callable[[str], None] | None = None,
) -> MemoryReport:
    """Run ``vos segment`` on a generated clip of each length; compare peaks to the first's.

    Each length gets its own temp folder (clip, mask, outputs), removed before the next, so
    the 10,000 PNGs of a long run do not pile up. A child that fails raises VosError with the
    last line it wrote to stderr (``vos segment``'s own one-line ``error:``).
    """
    say = progress or (lambda message: None)
    lengths = list(lengths)
    if not lengths or any(n < 1 for n in lengths):
        raise VosError(f"video lengths must be 1 frame or more, got {lengths}")
    if not 1 <= objects <= 254:
        raise VosError(f"--objects: {objects} is not an object count from 1 to 254")
    check_size(size)
    base_mask = first_frame_mask(height, width, objects)  # also checks the frame size
    report = MemoryReport(
        height=height,
        width=width,
        objects=objects,
        weights=None if weights is None else str(Path(weights).expanduser()),
        size=size,
        device=device,
        precision=precision,
        overlay=overlay,
    )
    for n in lengths:
        with tempfile.TemporaryDirectory(prefix="vos-memory-") as tmp_name:
            tmp = Path(tmp_name)
            say(f"{n} frames: encoding a {width}x{height} clip")
            clip = encode_mp4(iter_clip(n, height, width, objects), tmp / "clip.mp4")
            mask = tmp / "mask.png"
            write_mask(mask, base_mask)
            out = tmp / "masks"
            video = tmp / "overlay.mp4" if overlay else None
            argv = _segment_argv(clip, mask, out, video, weights, size, device, precision)
            say(f"{n} frames: vos segment in a child process")
            code, seconds, peak = _run_child(argv, tmp / "stderr.txt")
            if code != 0:
                how = _describe_exit(code)
                said = _last_line(tmp / "stderr.txt") or "(nothing on stderr)"
                raise VosError(f"vos segment on {n} frames failed ({how}): {said}")
            done = sum(1 for _ in out.glob("*.png"))
            if done != n:
                raise VosError(f"vos segment wrote {done} masks for a {n}-frame clip")
            if video is not None and not video.is_file():
                raise VosError(f"vos segment wrote no overlay video for {n} frames")
        first = report.rows[0].peak_rss_mb if report.rows else peak
        report.rows.append(MemoryRow(n, seconds, peak_rss_mb=peak, ratio=peak / first))
    return report
