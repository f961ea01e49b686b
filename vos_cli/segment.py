"""``vos segment``'s work: stream a video through the tracker into masks, an overlay, a cut-out
and a matte, in any combination, from one decode of the input.

Decoding, the network and output encoding overlap (decoding in a prefetch thread, PNG and video
encoding in writer threads); memory stays flat however long the video is.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vos_cli.errors import VosError
from vos_cli.inference.tracker import Tracker
from vos_cli.io.alpha import ObjectAlpha
from vos_cli.io.cutout import CutoutWriter, cutout_is_folder
from vos_cli.io.encoder import FfmpegWriter
from vos_cli.io.frame_rate import output_rate
from vos_cli.io.masks import MaskWriter, object_ids, read_mask, resize_nearest
from vos_cli.io.matte import MatteWriter, check_matte_path
from vos_cli.io.overlay import OverlayWriter
from vos_cli.io.paths import prepare_output_dir, prepare_output_file
from vos_cli.io.video import Prefetcher, TruncatedVideoWarning, open_frames
from vos_cli.model.factory import load_model
from vos_cli.weights_registry import resolve_weights

Notify = Callable[[str], None]
Progress = Callable[[int, int | None], None]


@dataclass
class SegmentRequest:
    source: Path
    masks: list[tuple[int, Path]]
    out_dir: Path | None = None
    overlay: Path | None = None
    weights: Path | None = None
    device: str = "auto"
    precision: str = "auto"
    size: int | None = None
    force: bool = False
    compile: bool = False
    flip: bool = False
    """Also track the mirrored video and average the two views (see :class:`Tracker`)."""
    cutout: Path | None = None
    """A ``.webm`` / ``.mov`` video with alpha, or a folder of RGBA PNGs (see io.cutout)."""
    matte: Path | None = None
    """A grayscale H.264 video, white on the chosen objects."""
    objects: list[int] | None = None
    """The ids the cut-out and the matte show; None: every object of the masks."""
    feather: int = 0
    """Soften the cut-out's and matte's edges over 2 * feather + 1 pixels (0: the masks exactly)."""


@dataclass
class SegmentSummary:
    frames: int
    objects: list[int]
    seconds: float
    out_dir: Path | None
    overlay: Path | None
    truncated: bool = False
    interrupted: bool = False
    warnings: list[str] = field(default_factory=list)
    cutout: Path | None = None
    matte: Path | None = None
    network_size: int | None = None
    """The short side of the network's input (None: the network never ran)."""

    @property
    def outputs(self) -> list[Path]:
        return [p for p in (self.out_dir, self.overlay, self.cutout, self.matte) if p is not None]

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def parse_mask_option(value: str) -> tuple[int, Path]:
    """``PATH`` (frame 0) or ``N:PATH``; a Windows drive letter is not mistaken for N."""
    head, sep, tail = value.partition(":")
    if sep and head.isdigit():
        return int(head), Path(tail)
    return 0, Path(value)


def parse_objects_option(value: str) -> list[int]:
    """``1,3`` -> [1, 3]; VosError for anything that is not a list of ids 1..254."""
    ids = []
    for part in value.split(","):
        part = part.strip()
        if not part.isdigit() or not 0 < int(part) < 255:
            raise VosError(f"--objects takes object ids 1..254 separated by commas, got {value!r}")
        ids.append(int(part))
    return sorted(set(ids))


def default_out_dir(source: Path) -> Path:
    """``clip.mp4`` -> ``clip_masks/`` beside it; a frame folder ``shots/`` -> ``shots_masks/``."""
    source = source.expanduser()
    stem = source.name if source.is_dir() else source.stem
    return source.parent / f"{stem}_masks"


def segment_video(
    request: SegmentRequest,
    notify: Notify = lambda message: None,
    progress: Progress = lambda done, total: None,
) -> SegmentSummary:
    """Run the whole job; raises VosError for anything wrong with the user's input."""
    if not request.masks:
        raise VosError("no mask given: pass --mask PATH for the first frame")
    source = open_frames(request.source)
    size = (source.width, source.height)
    given = {}
    for frame_index, path in request.masks:
        if frame_index in given:
            raise VosError(f"two masks given for frame {frame_index}")
        labels = read_mask(path, require_object=True)
        if (labels.shape[1], labels.shape[0]) != size:
            notify(
                f"mask {path} is {labels.shape[1]}x{labels.shape[0]}, the video "
                f"{size[0]}x{size[1]}: resized with nearest neighbour"
            )
            labels = resize_nearest(labels, size)
            if not object_ids(labels):
                raise VosError(f"mask {path} has no object left after resizing to the video size")
        given[frame_index] = labels
    if 0 not in given:
        notify(f"no mask for frame 0: frames before {min(given)} get no objects")
    known_ids = sorted({i for labels in given.values() for i in object_ids(labels)})
    _check_selection(request, known_ids)
    exact_count = source.path.is_dir()  # a video's frame count is only ffmpeg's estimate
    if exact_count and source.num_frames is not None and max(given) >= source.num_frames:
        raise VosError(
            f"a mask is given for frame {max(given)}, but the video has {source.num_frames} frames"
        )

    weights = resolve_weights(request.weights)
    inputs = [request.source, *(p for _, p in request.masks), weights]
    out_dir = request.out_dir
    videos = (request.overlay, request.cutout, request.matte)
    if out_dir is None and all(p is None for p in videos):
        out_dir = default_out_dir(request.source)
    cutout_folder = request.cutout is not None and cutout_is_folder(request.cutout)
    if request.matte is not None:
        check_matte_path(request.matte)
    _check_distinct(
        out=out_dir, overlay=request.overlay, cutout=request.cutout, matte=request.matte
    )
    if out_dir is not None:
        out_dir = prepare_output_dir(out_dir, request.force, protect=inputs)
    overlay = cutout = matte = None
    if request.overlay is not None:
        overlay = prepare_output_file(request.overlay, request.force, protect=inputs)
    if request.cutout is not None:
        prepare = prepare_output_dir if cutout_folder else prepare_output_file
        cutout = prepare(request.cutout, request.force, protect=inputs)
    if request.matte is not None:
        matte = prepare_output_file(request.matte, request.force, protect=inputs)
    rate = output_rate(source)
    if abs(rate - source.fps) > 0.01 * source.fps:
        notify(
            f"the video has a variable frame rate (about {source.fps:g} frames/s on average): "
            f"ffmpeg decodes it at a constant {float(rate):g} frames/s, repeating (or dropping) "
            "frames to fill the gaps, and every output has these frames at this rate, in step "
            "with the input"
        )

    model, _ = load_model(weights)
    tracker = Tracker(
        model,
        device=request.device,
        precision=request.precision,
        size=request.size,
        compile=request.compile,
        flip=request.flip,
    )
    for frame_index, labels in sorted(given.items()):
        tracker.add_mask(frame_index, labels)

    frames_done = 0
    interrupted = failed = False
    summary_warnings: list[str] = []
    tic = time.perf_counter()
    mask_writer = MaskWriter(out_dir) if out_dir is not None else None
    alpha = ObjectAlpha(request.objects, request.feather)
    video_writers: list[FfmpegWriter] = []
    try:  # an output that cannot start leaves no other output behind
        geometry = (rate, source.width, source.height)
        if overlay is not None:
            video_writers.append(OverlayWriter(overlay, *geometry))
        if cutout is not None:
            video_writers.append(CutoutWriter(cutout, *geometry, alpha))
        if matte is not None:
            video_writers.append(MatteWriter(matte, *geometry, alpha))
    except BaseException:
        for writer in (mask_writer, *video_writers):
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.close()
        source.close()
        raise
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TruncatedVideoWarning)
            with Prefetcher(source, maxsize=4, name="decode") as frames:
                for frame in frames:
                    labels = tracker.step(frame)
                    if mask_writer is not None:
                        mask_writer.write(frames_done, labels)
                    for video_writer in video_writers:
                        video_writer.write(frame, labels)
                    frames_done += 1
                    progress(frames_done, source.num_frames)
        summary_warnings = [str(w.message) for w in caught]
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        failed = True
        raise
    finally:
        # Flush and close writers on every path: what was written stays valid. A writer error
        # while unwinding from another exception must not hide that exception.
        for writer in (mask_writer, *video_writers):
            if writer is None:
                continue
            try:
                writer.close()
            except Exception:
                if not failed:
                    raise
        source.close()
    if source.truncated and not summary_warnings:
        summary_warnings.append(
            f"the video ended early after {frames_done} frames; it looks truncated or damaged"
        )
    if frames_done and max(given) >= frames_done and not interrupted:
        summary_warnings.append(
            f"the video ended at frame {frames_done - 1}; the mask for frame {max(given)} "
            "was never used"
        )
    return SegmentSummary(
        frames=frames_done,
        objects=list(tracker.object_ids),
        seconds=time.perf_counter() - tic,
        out_dir=out_dir,
        overlay=overlay,
        cutout=cutout,
        matte=matte,
        truncated=source.truncated,
        interrupted=interrupted,
        warnings=summary_warnings,
        network_size=min(tracker.work_shape) if tracker.work_shape else None,
    )


def _check_selection(request: SegmentRequest, known_ids: list[int]) -> None:
    """--objects and --feather shape the cut-out and the matte: refuse them without one."""
    if request.cutout is None and request.matte is None:
        for option, given in (("--objects", request.objects), ("--feather", request.feather)):
            if given:
                raise VosError(f"{option} applies to --cutout and --matte; give one of them")
    if request.feather < 0:
        raise VosError(f"--feather must be 0 or more pixels, got {request.feather}")
    missing = [i for i in request.objects or [] if i not in known_ids]
    if missing:
        have = ",".join(str(i) for i in known_ids)
        raise VosError(f"--objects: no mask has object {missing[0]} (the masks have {have})")


def _check_distinct(**outputs: Path | None) -> None:
    """Two outputs on one path would overwrite each other: refuse before any work."""
    seen: dict[Path, str] = {}
    for option, path in outputs.items():
        if path is None:
            continue
        key = path.expanduser().resolve(strict=False)
        if key in seen:
            flags = " and ".join(f"--{name.replace('_', '-')}" for name in (seen[key], option))
            raise VosError(f"{flags} name the same path {path}; choose another")
        seen[key] = option
