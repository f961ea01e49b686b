"""``vos bench speed``: frames per second and memory of the tracker, per object count.

Two numbers per object count, because they answer different questions:

* model-only: ``Tracker.step`` on frames already in memory, i.e. what the network sustains;
* end to end: decoding a real encoded video (the given one, or an H.264 mp4 of the generated
  clip written to a temp folder beforehand), ``Tracker.step`` and PNG encoding through
  :class:`~vos_cli.io.masks.MaskWriter`, i.e. what ``vos segment`` delivers.

Memory: resident set size sampled from ``/proc/self/status`` while each object count runs
(peak, and its increase over the RSS just before, which is the working memory of inference), the
process's lifetime peak from ``getrusage``, and ``torch.cuda.max_memory_allocated`` on a GPU.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.table import Table

from vos_cli.bench.clip import generate_clip, synthetic_mask
from vos_cli.bench.encode import encode_mp4
from vos_cli.bench.numbers import parse_counts, per_second
from vos_cli.bench.rss import RssSampler, current_rss_mb, max_rss_mb
from vos_cli.errors import VosError
from vos_cli.inference.runtime import resolve_device, resolve_precision
from vos_cli.inference.sizing import working_size
from vos_cli.inference.tracker import Tracker, check_size
from vos_cli.io.masks import MaskWriter
from vos_cli.io.video import FolderFrameSource, Prefetcher, open_frames
from vos_cli.model.agame import AGame
from vos_cli.model.backbones import BACKBONES
from vos_cli.model.config import ModelConfig
from vos_cli.model.factory import build_model, load_model
from vos_cli.weights_registry import resolve_weights

DEFAULT_FRAMES = 100
DEFAULT_HEIGHT = 480
DEFAULT_WIDTH = 854
DEFAULT_OBJECTS = (1, 3, 5)
DEFAULT_WARMUP = 5
_MB = 1024.0 * 1024.0


def parse_objects(text: str) -> list[int]:
    """``"1,3,5"`` -> [1, 3, 5]: the object counts to time (1..254 each, repeats dropped)."""
    return list(dict.fromkeys(parse_counts(text, "--objects", "1,3,5", 1, 254)))


@dataclass
class SpeedRow:
    """One object count's measurements."""

    objects: int
    frames: int
    model_seconds: float
    e2e_seconds: float
    peak_rss_mb: float | None = None
    rss_increase_mb: float | None = None
    cuda_peak_mb: float | None = None

    @property
    def model_fps(self) -> float:
        return per_second(self.frames, self.model_seconds)

    @property
    def e2e_fps(self) -> float:
        return per_second(self.frames, self.e2e_seconds)


@dataclass
class SpeedReport:
    """Setup and per-object-count rows of a speed run (``to_dict`` is the ``--json`` content)."""

    source: str
    height: int
    width: int
    work_height: int
    work_width: int
    device: str
    precision: str
    backbone: str
    weights: str | None
    compiled: bool
    warmup: int
    flip: bool = False
    rows: list[SpeedRow] = field(default_factory=list)
    rss_start_mb: float | None = None
    max_rss_mb: float | None = None
    torch_threads: int = 1

    def to_dict(self) -> dict:
        data = asdict(self)
        data["rows"] = [
            {**asdict(r), "model_fps": r.model_fps, "e2e_fps": r.e2e_fps} for r in self.rows
        ]
        return data


def speed_table(report: SpeedReport) -> Table:
    """The rows as a rich table, setup in the caption."""

    def num(value: float | None, fmt: str = "{:.1f}") -> str:
        return "-" if value is None or value != value else fmt.format(value)

    table = Table(title="Speed")
    for name in ("Objects", "Frames", "Model fps", "End-to-end fps", "Peak RSS MB", "RSS +MB"):
        table.add_column(name, justify="right")
    cuda = report.device.startswith("cuda")
    if cuda:
        table.add_column("CUDA peak MB", justify="right")
    for r in report.rows:
        cells = [
            str(r.objects),
            str(r.frames),
            num(r.model_fps, "{:.2f}"),
            num(r.e2e_fps, "{:.2f}"),
            num(r.peak_rss_mb),
            num(r.rss_increase_mb),
        ]
        if cuda:
            cells.append(num(r.cuda_peak_mb))
        table.add_row(*cells)
    size = f"{report.width}x{report.height}"
    if (report.work_width, report.work_height) != (report.width, report.height):
        size += f" (network at {report.work_width}x{report.work_height})"
    table.caption = (
        f"{report.source}, {size}, {report.backbone}, {report.device} {report.precision}"
        f"{', compiled' if report.compiled else ''}{', flip ensemble' if report.flip else ''}, "
        f"{report.torch_threads} thread(s); "
        f"process peak RSS {num(report.max_rss_mb)} MB"
    )
    return table


# ----------------------------------------------------------------------------- the benchmark


def _load_speed_model(weights: Path | None, backbone: str | None) -> tuple[AGame, str | None]:
    """Weights given: that model. Else ``backbone``: random heads (and random backbone, since
    values do not change speed and ImageNet weights may not be at hand). Else the default model.
    ``run_speed_bench`` has checked ``backbone`` before it decodes anything."""
    if weights is None and backbone is not None:
        if backbone == "resnet101":
            config = ModelConfig.paper_r101()
        else:  # the Lite family shares the default heads
            config = ModelConfig.lite0(backbone=backbone)
        return build_model(config, backbone_weights=None).eval(), None
    path = resolve_weights(weights)
    model, _ = load_model(path, expect_backbone=backbone)
    return model, str(path)


def run_speed_bench(
    *,
    source: Path | None = None,
    frames: int = DEFAULT_FRAMES,
    height: int | None = None,
    width: int | None = None,
    objects: list[int] | tuple[int, ...] = DEFAULT_OBJECTS,
    weights: Path | None = None,
    backbone: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    size: int | None = None,
    warmup: int = DEFAULT_WARMUP,
    compile: bool = False,
    flip: bool = False,
    progress: Callable[[str], None] | None = None,
) -> SpeedReport:
    """Time the tracker on ``frames`` frames for each object count in ``objects``.

    Without ``source`` a clip is generated at ``height`` x ``width`` (default 480x854, DAVIS
    480p) and encoded to a temp mp4 for the end-to-end pass; with it, its first ``frames``
    frames are used at their own size (``size`` scales the network's input either way). Each
    count gets a fresh tracker, ``warmup`` untimed steps, the model-only pass, then the
    end-to-end pass.
    """
    say = progress or (lambda message: None)
    if frames < 1:
        raise VosError(f"--frames must be at least 1, got {frames}")
    if warmup < 0:
        raise VosError(f"--warmup must be 0 or more, got {warmup}")
    counts = list(objects)
    if not counts or any(not 1 <= n <= 254 for n in counts):
        raise VosError("object counts must be from 1 to 254")
    if backbone is not None and backbone not in BACKBONES:
        raise VosError(f"unknown backbone {backbone!r} (choose one of: {', '.join(BACKBONES)})")
    if source is not None and (height is not None or width is not None):
        raise VosError("--height/--width size generated frames; with --source use --size instead")
    dev = resolve_device(device)
    dtype = resolve_precision(precision, dev)
    check_size(size)
    rss_start = current_rss_mb()

    with tempfile.TemporaryDirectory(prefix="vos-speed-") as tmp_name:
        tmp = Path(tmp_name)
        if source is None:
            h = DEFAULT_HEIGHT if height is None else height
            w = DEFAULT_WIDTH if width is None else width
            say(f"generating {frames} frames at {w}x{h}")
            clip, base_mask = generate_clip(frames, h, w, max(counts))
            video = encode_mp4(clip, tmp / "clip.mp4")
            source_label = "generated clip"
        else:
            video = Path(source).expanduser()
            src = open_frames(video)
            try:
                clip = list(itertools.islice(iter(src), frames))
            finally:
                src.close()
            h, w = clip[0].shape[:2]
            base_mask = synthetic_mask(h, w, max(counts))
            kind = "frame folder" if isinstance(src, FolderFrameSource) else "video"
            source_label = f"{kind} {video.name}"
        model, weights_label = _load_speed_model(weights, backbone)
        # One tracker for every pass: its private model copy is made (and compiled) once.
        tracker = Tracker(
            model, device=device, precision=precision, size=size, compile=compile, flip=flip
        )
        work_h, work_w = working_size(h, w, tracker.size)  # the model's own size by default
        report = SpeedReport(
            source=source_label,
            height=h,
            width=w,
            work_height=work_h,
            work_width=work_w,
            device=str(dev),
            precision=str(dtype).removeprefix("torch."),
            backbone=model.config.backbone,
            weights=weights_label,
            compiled=compile,
            warmup=warmup,
            flip=flip,
            rss_start_mb=rss_start,
            torch_threads=torch.get_num_threads(),
        )
        for k in counts:
            say(f"{k} object(s): warm-up, model-only pass, end-to-end pass")
            mask = np.where(base_mask <= k, base_mask, 0).astype(np.uint8)
            report.rows.append(_time_count(tracker, clip, video, mask, k, tmp, device, warmup))
    report.max_rss_mb = max_rss_mb()
    return report


def _restart(tracker: Tracker, mask: np.ndarray) -> None:
    tracker.reset()
    tracker.add_mask(0, mask)


def _time_count(
    tracker: Tracker,
    clip: list[np.ndarray],
    video: Path,
    mask: np.ndarray,
    count: int,
    tmp: Path,
    device: str,
    warmup: int,
) -> SpeedRow:
    n = len(clip)
    cuda = resolve_device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with RssSampler() as rss:
        _restart(tracker, mask)
        for i in range(warmup):
            tracker.step(clip[i % n])

        _restart(tracker, mask)
        model_seconds = 0.0
        for frame in clip:
            tic = time.perf_counter()
            tracker.step(frame)  # returns a CPU array, so GPU work is done when it returns
            model_seconds += time.perf_counter() - tic

        _restart(tracker, mask)
        src = open_frames(video)
        done = 0
        try:
            tic = time.perf_counter()
            with (
                MaskWriter(tmp / f"masks-{count}") as writer,
                Prefetcher(itertools.islice(iter(src), n), maxsize=4, name="decode") as frames,
            ):
                for frame in frames:
                    writer.write(done, tracker.step(frame))
                    done += 1
            e2e_seconds = time.perf_counter() - tic
        finally:
            src.close()
    cuda_peak = torch.cuda.max_memory_allocated() / _MB if cuda else None
    if done != n:
        raise VosError(f"{video} decoded to {done} frames, expected {n}")
    return SpeedRow(
        objects=count,
        frames=n,
        model_seconds=model_seconds,
        e2e_seconds=e2e_seconds,
        peak_rss_mb=rss.peak_mb,
        rss_increase_mb=rss.increase_mb,
        cuda_peak_mb=cuda_peak,
    )
