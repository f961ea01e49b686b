"""``vos segment``'s work: stream a video through the tracker into masks and/or an overlay.

Decoding, the network and output encoding overlap (decoding in a prefetch thread, PNG and H.264
encoding in writer threads); memory stays flat however long the video is.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vos_cli.errors import VosError
from vos_cli.inference.tracker import Tracker
from vos_cli.io.masks import MaskWriter, object_ids, read_mask, resize_nearest
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

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def parse_mask_option(value: str) -> tuple[int, Path]:
    """``PATH`` (frame 0) or ``N:PATH``; a Windows drive letter is not mistaken for N."""
    head, sep, tail = value.partition(":")
    if sep and head.isdigit():
        return int(head), Path(tail)
    return 0, Path(value)


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
    exact_count = source.path.is_dir()  # a video's frame count is only ffmpeg's estimate
    if exact_count and source.num_frames is not None and max(given) >= source.num_frames:
        raise VosError(
            f"a mask is given for frame {max(given)}, but the video has {source.num_frames} frames"
        )

    weights = resolve_weights(request.weights)
    inputs = [request.source, *(p for _, p in request.masks), weights]
    out_dir = request.out_dir
    if out_dir is None and request.overlay is None:
        out_dir = default_out_dir(request.source)
    if out_dir is not None:
        out_dir = prepare_output_dir(out_dir, request.force, protect=inputs)
    overlay = None
    if request.overlay is not None:
        overlay = prepare_output_file(request.overlay, request.force, protect=inputs)

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
    overlay_writer = (
        OverlayWriter(overlay, source.fps, source.width, source.height) if overlay else None
    )
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TruncatedVideoWarning)
            with Prefetcher(source, maxsize=4, name="decode") as frames:
                for frame in frames:
                    labels = tracker.step(frame)
                    if mask_writer is not None:
                        mask_writer.write(frames_done, labels)
                    if overlay_writer is not None:
                        overlay_writer.write(frame, labels)
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
        for writer in (mask_writer, overlay_writer):
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
        truncated=source.truncated,
        interrupted=interrupted,
        warnings=summary_warnings,
    )
