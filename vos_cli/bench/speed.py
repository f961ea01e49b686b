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
import json
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType

import imageio_ffmpeg
import numpy as np
import torch
from rich.table import Table

from vos_cli.errors import VosError
from vos_cli.inference.runtime import resolve_device, resolve_precision
from vos_cli.inference.tracker import Tracker, check_size, working_size
from vos_cli.io.masks import MaskWriter
from vos_cli.io.video import FolderFrameSource, Prefetcher, open_frames
from vos_cli.model.agame import AGame
from vos_cli.model.config import ModelConfig
from vos_cli.model.factory import build_model, load_model
from vos_cli.weights_registry import resolve_weights

DEFAULT_FRAMES = 100
DEFAULT_HEIGHT = 480
DEFAULT_WIDTH = 854
DEFAULT_OBJECTS = (1, 3, 5)
DEFAULT_WARMUP = 5
BACKBONES = ("lite0", "resnet101")
_MB = 1024.0 * 1024.0


# ----------------------------------------------------------------------------- memory


def current_rss_mb() -> float | None:
    """This process's resident set size now (Linux ``/proc``); None where unavailable."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def ru_maxrss_mb(value: int) -> float:
    """A ``ru_maxrss`` in MB: the field is in kB on Linux but in bytes on macOS."""
    return value / _MB if sys.platform == "darwin" else value / 1024.0


def max_rss_mb() -> float:
    """Peak RSS over this process's lifetime."""
    return ru_maxrss_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


class RssSampler:
    """Samples RSS in a thread: ``ru_maxrss`` cannot be reset, so per-run peaks need sampling."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.start_mb = current_rss_mb()
        self.peak_mb = self.start_mb
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        now = current_rss_mb()
        self.samples += 1
        if now is not None and (self.peak_mb is None or now > self.peak_mb):
            self.peak_mb = now

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> RssSampler:
        if self.start_mb is not None:
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._sample()

    @property
    def increase_mb(self) -> float | None:
        if self.start_mb is None or self.peak_mb is None:
            return None
        return self.peak_mb - self.start_mb


# ----------------------------------------------------------------------------- inputs


def parse_objects(text: str) -> list[int]:
    """``"1,3,5"`` -> [1, 3, 5]: the object counts to time (1..254 each)."""
    counts: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            n = int(part)
        except ValueError:
            raise VosError(f"--objects takes counts like 1,3,5; {part!r} is not a number") from None
        if not 1 <= n <= 254:
            raise VosError(f"--objects: {n} is not an object count from 1 to 254")
        if n not in counts:
            counts.append(n)
    if not counts:
        raise VosError("--objects names no object count (e.g. --objects 1,3,5)")
    return counts


def _ellipse(height: int, width: int, cy: float, cx: float, ry: float, rx: float) -> tuple:
    """Pixels of an axis-aligned ellipse, computed inside its bounding box only."""
    y0, y1 = max(int(cy - ry), 0), min(int(cy + ry) + 1, height)
    x0, x1 = max(int(cx - rx), 0), min(int(cx + rx) + 1, width)
    if y0 >= y1 or x0 >= x1:
        return (slice(0, 0), slice(0, 0)), np.zeros((0, 0), dtype=bool)
    yy = (np.arange(y0, y1, dtype=np.float32)[:, None] - cy) / ry
    xx = (np.arange(x0, x1, dtype=np.float32)[None, :] - cx) / rx
    return (slice(y0, y1), slice(x0, x1)), yy**2 + xx**2 <= 1.0


@dataclass(frozen=True)
class _Scene:
    """What a generated clip is drawn from; each frame is a pure function of it and the index."""

    height: int
    width: int
    background: np.ndarray
    centres: np.ndarray
    radii: np.ndarray
    velocity: np.ndarray
    colours: np.ndarray

    def draw(self, t: int, mask: np.ndarray | None = None) -> np.ndarray:
        """Frame ``t``; with ``mask``, also paint object ``k``'s pixels there as id ``k + 1``."""
        frame = self.background.copy()
        for k in range(len(self.centres)):
            cy, cx = self.centres[k] + self.velocity[k] * t
            where, inside = _ellipse(self.height, self.width, cy, cx, *self.radii[k])
            frame[where][inside] = self.colours[k]
            if mask is not None:
                mask[where][inside] = k + 1
        return frame


def _scene(height: int, width: int, num_objects: int, seed: int) -> _Scene:
    if height < 16 or width < 16:
        raise VosError(f"a generated clip needs frames of at least 16x16, got {width}x{height}")
    rng = np.random.default_rng(seed)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    tint = rng.uniform(0.2, 0.8, (2, 3)).astype(np.float32)
    background = (40 + 160 * (ys * tint[0] + xs * tint[1]) / 2).astype(np.uint8)
    # spread the objects over the frame so each is visible in frame 0
    cols = int(np.ceil(np.sqrt(num_objects)))
    rows = int(np.ceil(num_objects / cols))
    centres = np.array(
        [
            ((k // cols + 0.5) * height / rows, (k % cols + 0.5) * width / cols)
            for k in range(num_objects)
        ]
    )
    radii = np.stack(
        [np.full(num_objects, 0.35 * height / rows), np.full(num_objects, 0.35 * width / cols)], 1
    )
    velocity = rng.uniform(-0.004, 0.004, (num_objects, 2)) * np.array([height, width])
    colours = rng.integers(0, 256, (num_objects, 3), dtype=np.uint8)
    return _Scene(
        height=height,
        width=width,
        background=np.broadcast_to(background, (height, width, 3)),
        centres=centres,
        radii=radii,
        velocity=velocity,
        colours=colours,
    )


def iter_clip(
    num_frames: int, height: int, width: int, num_objects: int, seed: int = 0
) -> Iterator[np.ndarray]:
    """The frames of :func:`generate_clip` one at a time, so a clip of any length needs the
    memory of one frame (a 10,000-frame 854x480 list would be 12 GB). Arguments are checked
    here, not at the first ``next``."""
    if num_frames < 1:
        raise VosError(f"a generated clip needs at least 1 frame, got {num_frames}")
    scene = _scene(height, width, num_objects, seed)
    return (scene.draw(t) for t in range(num_frames))


def first_frame_mask(height: int, width: int, num_objects: int, seed: int = 0) -> np.ndarray:
    """Frame 0's label map of the clip :func:`iter_clip` generates with the same arguments."""
    mask = np.zeros((height, width), dtype=np.uint8)
    _scene(height, width, num_objects, seed).draw(0, mask)
    return mask


def generate_clip(
    num_frames: int, height: int, width: int, num_objects: int, seed: int = 0
) -> tuple[list[np.ndarray], np.ndarray]:
    """A deterministic clip of ellipses drifting over a smooth background, and frame 0's mask.

    Needs no files, so ``vos bench speed`` runs anywhere; content does not change the speed of
    the network, only the frame size and object count do. Object ``k`` is id ``k``. Holds every
    frame: for long clips use :func:`iter_clip` and :func:`first_frame_mask`.
    """
    frames = list(iter_clip(num_frames, height, width, num_objects, seed))
    return frames, first_frame_mask(height, width, num_objects, seed)


def synthetic_mask(height: int, width: int, num_objects: int) -> np.ndarray:
    """First-frame mask of ``num_objects`` ellipses in a grid, for a user clip without masks."""
    return first_frame_mask(height, width, num_objects)


def encode_mp4(frames: Iterable[np.ndarray], path: Path, fps: float = 24.0) -> Path:
    """H.264 mp4 of the frames (yuv420p, or yuv444p for odd sizes, which 4:2:0 cannot hold).

    Frames are pulled one at a time (any iterable; the first gives the size), so encoding a
    generated clip of any length holds one frame.
    """
    stream = iter(frames)
    first = next(stream, None)
    if first is None:
        raise VosError(f"no frames to encode into {path}")
    height, width = first.shape[:2]
    even = height % 2 == 0 and width % 2 == 0
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p" if even else "yuv444p",
        quality=None,
        macro_block_size=1,
        ffmpeg_log_level="error",
        output_params=["-preset", "veryfast", "-crf", "20"],
    )
    try:
        writer.send(None)
        for frame in itertools.chain([first], stream):
            if frame.shape[:2] != (height, width):
                raise VosError(
                    f"frame of {frame.shape[1]}x{frame.shape[0]} in a {width}x{height} clip"
                )
            writer.send(np.ascontiguousarray(frame))
    except (OSError, RuntimeError) as exc:
        raise VosError(f"Cannot encode the test clip {path}: {exc}") from None
    finally:
        writer.close()
    return path


# ----------------------------------------------------------------------------- results


def per_second(count: int, seconds: float) -> float:
    """A rate that reads as missing (nan) rather than infinite when nothing was timed."""
    return count / seconds if seconds > 0 else float("nan")


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


def write_json(data: dict, path: Path) -> Path:
    """A benchmark's numbers as indented JSON (``--json``), its folder created if need be."""
    path = Path(path).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise VosError(f"Cannot write {path}: {exc.strerror or exc}") from None
    return path


def write_speed_json(report: SpeedReport, path: Path) -> Path:
    return write_json(report.to_dict(), path)


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
    values do not change speed and ImageNet weights may not be at hand). Else the default model."""
    if backbone is not None and backbone not in BACKBONES:
        raise VosError(f"unknown backbone {backbone!r} (choose {' or '.join(BACKBONES)})")
    if weights is None and backbone is not None:
        config = ModelConfig.lite0() if backbone == "lite0" else ModelConfig.paper_r101()
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
        raise VosError(f"unknown backbone {backbone!r} (choose {' or '.join(BACKBONES)})")
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
