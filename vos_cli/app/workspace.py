"""One video for ``vos annotate``: its frames on demand, the mask maker, the tracking job.

Nothing here takes a path from the page: the source, the output folder and every output's name
are fixed when the workspace is made (:data:`OUTPUT_NAMES`), so the server can only hand over
the values it was started with.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vos_cli.errors import VosError
from vos_cli.io.masks import DAVIS_PALETTE, object_ids, read_mask, resize_nearest, write_mask
from vos_cli.io.video import open_frames
from vos_cli.prompts.types import Box, ObjectPrompt, Point

#: Frames kept decoded (the one being annotated and its neighbours on the scrubber).
FRAME_CACHE = 8
#: Within this many frames ahead of the decoder, decode on; further, seek (ffmpeg -ss).
DECODE_AHEAD = 120

CUTOUT_FORMATS = {"mov": "cutout.mov", "webm": "cutout.webm", "png": "cutout"}

#: Every file the page can download, by the name in its URL (``/files/NAME``).
OUTPUT_NAMES = (
    "mask.png",
    "overlay.mp4",
    "matte.mp4",
    "cutout.mov",
    "cutout.webm",
    "masks.zip",
    "cutout.zip",
)


def default_annotate_dir(source: Path) -> Path:
    """``clip.mp4`` -> ``clip_vos/`` beside it (a frame folder ``shots/`` -> ``shots_vos/``)."""
    source = source.expanduser()
    stem = source.name if source.is_dir() else source.stem
    return source.parent / f"{stem}_vos"


class Frames:
    """Frame N of a video or frame folder, decoded when asked for; a few kept in a cache.

    A video is decoded forward from where the decoder stands when N is a little ahead of it,
    and otherwise from an ffmpeg seek to N / fps (exact for constant-rate videos), so a long
    video is never decoded whole to show one frame.
    """

    def __init__(self, source: Path) -> None:
        self.source = source
        probe = open_frames(source)
        try:
            self.width, self.height = probe.width, probe.height
            self.fps = float(probe.fps)
            self.count: int | None = probe.num_frames
            self.files: list[Path] | None = getattr(probe, "files", None)
        finally:
            probe.close()
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._reader: Iterator[bytes] | None = None
        self._next = 0  # the frame the reader gives next
        self._lock = threading.Lock()
        self.decoded = 0  # frames decoded so far (tests check a far frame is sought, not decoded)

    def get(self, index: int) -> np.ndarray:
        if index < 0 or (self.count is not None and index >= self.count):
            raise VosError(f"frame {index} is not in the video (0 to {(self.count or 1) - 1})")
        with self._lock:
            if index in self._cache:
                self._cache.move_to_end(index)
                return self._cache[index]
            rgb = self._read_file(index) if self.files is not None else self._decode(index)
            self._cache[index] = rgb
            while len(self._cache) > FRAME_CACHE:
                self._cache.popitem(last=False)
            return rgb

    def _read_file(self, index: int) -> np.ndarray:
        from PIL import Image

        assert self.files is not None
        with Image.open(self.files[index]) as img:
            return np.asarray(img.convert("RGB"))

    def _start(self, index: int) -> None:
        import imageio_ffmpeg

        self.close()
        seek = ["-ss", f"{index / self.fps:.6f}"] if index > 0 else []
        self._reader = imageio_ffmpeg.read_frames(
            str(self.source.resolve()), pix_fmt="rgb24", input_params=seek
        )
        next(self._reader)  # the header
        self._next = index

    def _decode(self, index: int) -> np.ndarray:
        if self._reader is None or not self._next <= index < self._next + DECODE_AHEAD:
            self._start(index if index >= DECODE_AHEAD else 0)
        assert self._reader is not None
        while True:
            try:
                raw = next(self._reader)
            except StopIteration:
                self._reader = None
                self.count = self._next
                raise VosError(
                    f"frame {index} is past the end of the video ({self._next} frames)"
                ) from None
            self.decoded += 1
            frame = np.frombuffer(raw, np.uint8).reshape(self.height, self.width, 3)
            self._next += 1
            if self._next - 1 == index:
                return frame.copy()
            if index - (self._next - 1) <= 2:
                self._cache[self._next - 1] = frame.copy()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


@dataclass
class Job:
    """The tracking job as the page sees it."""

    state: str = "idle"  # idle | running | done | stopped | failed
    done: int = 0
    total: int | None = None
    message: str = ""
    notes: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    started: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "message": self.message,
            "notes": list(self.notes),
            "outputs": dict(self.outputs),
            "seconds": round(time.perf_counter() - self.started, 1) if self.started else 0,
        }


class Conflict(VosError):
    """Outputs that exist already: the page asks before writing over them."""

    def __init__(self, paths: list[Path]) -> None:
        super().__init__("exists: " + ", ".join(str(p) for p in paths))
        self.paths = paths


class Workspace:
    """The video, the objects pointed at on one frame, and the outputs under ``out_dir``."""

    def __init__(
        self,
        source: Path,
        out_dir: Path | None = None,
        mask: tuple[int, Path] | None = None,
        weights: Path | None = None,
        mask_weights: Path | None = None,
        device: str = "auto",
    ) -> None:
        self.source = Path(source).expanduser()
        if not self.source.exists():
            raise VosError(f"Video not found: {self.source}")
        self.frames = Frames(self.source)
        self.out_dir = Path(out_dir).expanduser() if out_dir else default_annotate_dir(self.source)
        self.weights = weights
        self.mask_weights = mask_weights
        self.device = device
        self._maker: Any = None
        self._maker_frame: int | None = None
        self._lock = threading.Lock()
        self.frame = 0
        self.labels = np.zeros((self.frames.height, self.frames.width), np.uint8)
        self.base: np.ndarray | None = None  # a mask loaded with --mask, to fix
        self.mask_source: Path | None = None
        if mask is not None:
            self._load_mask(*mask)
        self.job = Job()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ state
    def _load_mask(self, frame: int, path: Path) -> None:
        labels = read_mask(path, require_object=True)
        size = (self.frames.width, self.frames.height)
        if (labels.shape[1], labels.shape[0]) != size:
            labels = resize_nearest(labels, size)
        labels = np.where(labels == 255, 0, labels).astype(np.uint8)
        self.frames.get(frame)  # checks the frame is in the video
        self.frame, self.base, self.labels, self.mask_source = frame, labels, labels.copy(), path

    def info(self) -> dict[str, Any]:
        f = self.frames
        base_ids = object_ids(self.base) if self.base is not None else []
        return {
            "video": {
                "name": self.source.name,
                "width": f.width,
                "height": f.height,
                "frames": f.count,
                "fps": f.fps,
            },
            "frame": self.frame,
            "mask": None if self.mask_source is None else str(self.mask_source),
            "base_ids": base_ids,
            "out_dir": str(self.out_dir),
            "palette": DAVIS_PALETTE[:256].tolist(),
            "cutout_formats": list(CUTOUT_FORMATS),
            "job": self.job.as_dict(),
        }

    def frame_jpeg(self, index: int) -> bytes:
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(self.frames.get(index)).save(buf, format="JPEG", quality=90)
        return buf.getvalue()

    def _mask_maker(self) -> Any:
        if self._maker is None:
            from vos_cli.prompts.command import _device
            from vos_cli.prompts.predictor import MaskMaker

            self._maker = MaskMaker.load(self.mask_weights, device=_device(self.device))
        return self._maker

    def predict(self, frame: int, objects: list[dict[str, Any]]) -> np.ndarray:
        """The label map of ``objects`` (the page's JSON) on ``frame``; kept for Save / Track."""
        prompts = [_parse_object(o) for o in objects]
        with self._lock:
            rgb = self.frames.get(frame)
            height, width = rgb.shape[:2]
            if frame != self.frame:
                self.base = None  # a loaded mask belongs to its own frame
            probs, ids = [], []
            for object_id, prompt, from_base in prompts:
                base = None
                if from_base and self.base is not None:
                    base = self.base == object_id
                    if not base.any():
                        base = None
                if prompt.box is None and not any(p.positive for p in prompt.points):
                    if base is None:
                        continue  # an object with nothing on it yet
                    if not prompt.points:
                        probs.append(base.astype(np.float32))
                        ids.append(object_id)
                        continue
                    prompt = ObjectPrompt(_bounding_box(base, width, height), prompt.points)
                prompt.check(width, height, len(ids) + 1)
                maker = self._mask_maker()
                if self._maker_frame != frame:
                    maker.set_image(rgb)
                    self._maker_frame = frame
                probs.append(maker.predict_object(prompt, base))
                ids.append(object_id)
            labels = np.zeros((height, width), np.uint8)
            if probs:
                from vos_cli.prompts.predictor import resolve_labels

                index = resolve_labels(np.stack(probs))
                lut = np.array([0, *ids], np.uint8)
                labels = lut[index]
            self.frame, self.labels = frame, labels
            return labels

    # ------------------------------------------------------------------ outputs
    def output_paths(self, cutout: str = "mov") -> dict[str, Path]:
        if cutout not in CUTOUT_FORMATS and cutout != "none":
            raise VosError(f"cut-out format must be one of {', '.join(CUTOUT_FORMATS)} or none")
        paths = {
            "masks": self.out_dir / "masks",
            "overlay": self.out_dir / "overlay.mp4",
            "matte": self.out_dir / "matte.mp4",
        }
        if cutout != "none":
            paths["cutout"] = self.out_dir / CUTOUT_FORMATS[cutout]
        return paths

    def mask_path(self) -> Path:
        return self.out_dir / "mask.png"

    def save_mask(self, overwrite: bool = False) -> Path:
        path = self.mask_path()
        if not object_ids(self.labels):
            raise VosError("the mask holds no object yet: draw a box on one")
        if path.exists() and not overwrite:
            raise Conflict([path])
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_mask(path, self.labels)
        return path

    def file_for(self, name: str) -> Path | None:
        """The file behind ``/files/NAME`` (only the names of :data:`OUTPUT_NAMES`)."""
        if name not in OUTPUT_NAMES:
            return None
        if name.endswith(".zip"):
            folder = self.out_dir / name.removesuffix(".zip")
            return folder if folder.is_dir() else None
        path = self.out_dir / name
        return path if path.is_file() else None

    # ------------------------------------------------------------------ the job
    def start_track(self, cutout: str = "mov", overwrite: bool = False) -> None:
        from vos_cli.segment import SegmentRequest

        if self._thread is not None and self._thread.is_alive():
            raise VosError("tracking is running already")
        labels = self.labels.copy()
        if not object_ids(labels):
            raise VosError("no object yet: draw a box on the object to track first")
        paths = self.output_paths(cutout)
        frame = self.frame
        mask_file = self.mask_path() if frame > 0 else None
        existing = [p for p in [*paths.values(), mask_file] if p is not None and _exists(p)]
        if existing and not overwrite:
            raise Conflict(existing)
        masks: list[tuple[int, Path]] = []
        if mask_file is not None:  # the in-memory mask is for frame 0 only
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_mask(mask_file, labels)
            masks = [(frame, mask_file)]
        request = SegmentRequest(
            source=self.source,
            masks=masks,
            first_mask=labels if frame == 0 else None,
            out_dir=paths["masks"],
            overlay=paths["overlay"],
            cutout=paths.get("cutout"),
            matte=paths["matte"],
            weights=self.weights,
            device=self.device,
            force=overwrite,
        )
        self._cancel.clear()
        self.job = Job(state="running", total=self.frames.count, started=time.perf_counter())
        self._thread = threading.Thread(
            target=self._run, args=(request, paths), name="vos-track", daemon=True
        )
        self._thread.start()

    def _run(self, request: Any, paths: dict[str, Path]) -> None:
        from vos_cli.segment import segment_video

        job = self.job

        def progress(done: int, total: int | None) -> None:
            job.done, job.total = done, total
            if self._cancel.is_set():
                raise KeyboardInterrupt  # segment_video closes every output, all valid

        try:
            summary = segment_video(request, notify=job.notes.append, progress=progress)
        except VosError as exc:
            job.state, job.message = "failed", str(exc).splitlines()[0]
            return
        except Exception as exc:  # shown on the page rather than lost in a thread
            job.state, job.message = "failed", f"{type(exc).__name__}: {exc}"
            return
        job.notes.extend(summary.warnings)
        job.done = summary.frames
        job.total = summary.frames if not summary.interrupted else job.total
        job.outputs = {
            name: str(path) for name, path in paths.items() if path is not None and _exists(path)
        }
        job.state = "stopped" if summary.interrupted else "done"
        job.message = (
            f"{'stopped after' if summary.interrupted else 'tracked'} {summary.frames} frames, "
            f"{len(summary.objects)} object(s), {summary.fps:.1f} frames/s"
        )

    def cancel(self, wait: float | None = None) -> None:
        """Stop the job at the next frame; its outputs are closed and valid."""
        self._cancel.set()
        if wait is not None and self._thread is not None:
            self._thread.join(wait)

    def close(self) -> None:
        self.cancel(wait=60)
        self.frames.close()


def _exists(path: Path) -> bool:
    if path.is_dir():
        return any(path.iterdir())
    return path.exists()


def _bounding_box(mask: np.ndarray, width: int, height: int) -> Box:
    """A loaded object's region as a box (a little margin), for clicks that fix it."""
    ys, xs = np.nonzero(mask)
    margin = max(2, round(0.05 * max(xs.ptp() + 1, ys.ptp() + 1)))
    return Box(
        max(0, xs.min() - margin),
        max(0, ys.min() - margin),
        min(width, xs.max() + 1 + margin),
        min(height, ys.max() + 1 + margin),
    )


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise VosError(f"{what} must be a number")
    return float(value)


def _parse_object(data: Any) -> tuple[int, ObjectPrompt, bool]:
    """``{"id": 1, "box": [x0, y0, x1, y1] | null, "points": [[x, y, 1 | 0], ...],
    "base": bool}`` -> (id, prompt, whether it fixes the loaded mask's object of that id)."""
    if not isinstance(data, dict):
        raise VosError("each object must be an object")
    object_id = data.get("id")
    if isinstance(object_id, bool) or not isinstance(object_id, int) or not 0 < object_id < 255:
        raise VosError("object ids are 1..254")
    box = None
    if data.get("box") is not None:
        values = data["box"]
        if not isinstance(values, list) or len(values) != 4:
            raise VosError("a box is [x0, y0, x1, y1]")
        x0, y0, x1, y1 = (_number(v, "a box coordinate") for v in values)
        box = Box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    points = []
    for item in data.get("points") or []:
        if not isinstance(item, list) or len(item) != 3:
            raise VosError("a click is [x, y, 1 (object) or 0 (background)]")
        points.append(
            Point(_number(item[0], "a click"), _number(item[1], "a click"), bool(item[2]))
        )
    return object_id, ObjectPrompt(box, points), bool(data.get("base"))


def overlay_png(labels: np.ndarray, alpha: int = 140) -> bytes:
    """The label map as an RGBA PNG: each object in its DAVIS colour, background transparent."""
    import io

    from PIL import Image

    rgba = np.zeros((*labels.shape, 4), np.uint8)
    rgba[..., :3] = DAVIS_PALETTE[labels]
    rgba[..., 3] = np.where(labels > 0, alpha, 0)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
