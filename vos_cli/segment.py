"""``vos segment``'s work: stream a video through the tracker into masks, an overlay, a cut-out
and a matte, in any combination, from one decode of the input.

Decoding, the network and output encoding overlap (decoding in a prefetch thread, PNG and video
encoding in writer threads); memory stays flat however long the video is.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vos_cli import resume, signals
from vos_cli.errors import DecoderError, PartialRunError, VosError, WriteError
from vos_cli.inference.tracker import Tracker
from vos_cli.io.alpha import ObjectAlpha
from vos_cli.io.cutout import CutoutWriter, cutout_is_folder
from vos_cli.io.encoder import FfmpegWriter
from vos_cli.io.frame_rate import output_rate
from vos_cli.io.frames import FrameSource
from vos_cli.io.masks import MaskWriter, mask_filename, object_ids, read_mask, resize_nearest
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
    resume: bool = False
    """Continue the stopped run whose masks are in ``out_dir`` (see :mod:`vos_cli.resume`)."""
    first_mask: np.ndarray | None = None
    """A label map for frame 0 made in memory (``vos segment --box``, see vos_cli.prompts):
    its ids follow the highest id of ``masks``; a --mask for frame 0 keeps its own pixels."""


@dataclass
class SegmentSummary:
    frames: int
    objects: list[int]
    seconds: float
    out_dir: Path | None
    overlay: Path | None
    truncated: bool = False
    interrupted: bool = False
    """Stopped early by Ctrl-C, SIGTERM or SIGHUP (``stop_signal``); the outputs are valid."""
    warnings: list[str] = field(default_factory=list)
    cutout: Path | None = None
    matte: Path | None = None
    network_size: int | None = None
    """The short side of the network's input (None: the network never ran)."""
    stop_signal: int | None = None
    """The signal that interrupted the run (SIGINT for Ctrl-C)."""
    resumed_at: int = 0
    """The frame a ``--resume`` run continued from (0: a run from the start)."""

    @property
    def outputs(self) -> list[Path]:
        return [p for p in (self.out_dir, self.overlay, self.cutout, self.matte) if p is not None]

    @property
    def fps(self) -> float:
        """Frames tracked per second (a resumed run's earlier frames are not tracked again)."""
        tracked = self.frames - self.resumed_at
        return tracked / self.seconds if self.seconds > 0 else 0.0


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
    """Run the whole job; raises VosError for anything wrong with the user's input.

    A failure part-way (an output that cannot be written, the decoder dying, a broken frame) is
    a :class:`PartialRunError` with the count of masks on disk, raised after every output is
    closed: each file at its final name is then complete and valid. Ctrl-C (KeyboardInterrupt)
    returns a summary with ``interrupted`` set instead.
    """
    if not request.masks and request.first_mask is None:
        raise VosError("no mask given: pass --mask PATH or --box X0,Y0,X1,Y1 for the first frame")
    source = open_frames(request.source)
    try:
        return _segment(request, source, notify, progress)
    finally:
        source.close()


def _segment(
    request: SegmentRequest, source: FrameSource, notify: Notify, progress: Progress
) -> SegmentSummary:
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
    if request.first_mask is not None:
        given[0] = _add_first_mask(request.first_mask, given, size)
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
    run = resume.fingerprint(
        request.source,
        getattr(source, "files", None),
        request.masks,
        weights,
        request.size,
        request.flip,
    )
    if request.first_mask is not None:
        run["prompts"] = hashlib.sha256(request.first_mask.tobytes()).hexdigest()
    state = _state_to_resume(request, out_dir, run)
    own_outputs = state["outputs"] if state is not None else []

    def replaceable(path: Path) -> bool:
        return request.force or _key(path) in own_outputs

    if out_dir is not None:
        out_dir = prepare_output_dir(out_dir, request.force or state is not None, protect=inputs)
    overlay = cutout = matte = None
    if request.overlay is not None:
        overlay = prepare_output_file(request.overlay, replaceable(request.overlay), protect=inputs)
    if request.cutout is not None:
        prepare = prepare_output_dir if cutout_folder else prepare_output_file
        cutout = prepare(request.cutout, replaceable(request.cutout), protect=inputs)
    if request.matte is not None:
        matte = prepare_output_file(request.matte, replaceable(request.matte), protect=inputs)
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
    device = f"{tracker.device.type}/{str(tracker.dtype).removeprefix('torch.')}"
    resumed_at = 0
    if state is not None:
        assert out_dir is not None
        resumed_at = _restore(state, tracker, device, out_dir, (overlay, cutout, matte), notify)
    else:
        for frame_index, labels in sorted(given.items()):
            tracker.add_mask(frame_index, labels)
    outputs = [_key(p) for p in (overlay, cutout, matte) if p is not None]

    def save_state(frame: int, snapshot: dict[str, Any]) -> Callable[[], None]:
        assert out_dir is not None
        return lambda: resume.save_state(out_dir, frame, snapshot, run, outputs, device)

    frames_done = 0
    interrupted = False
    failure: VosError | None = None
    stop_signal: int | None = None
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
        _close_all([mask_writer, *video_writers], quiet=True)
        raise
    try:
        if mask_writer is not None and state is None:
            mask_writer.after_masks(save_state(0, tracker.snapshot()))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TruncatedVideoWarning)
            with Prefetcher(source, maxsize=4, name="decode") as frames:
                for frame in frames:
                    if frames_done < resumed_at:  # done before: its mask is on disk
                        assert out_dir is not None
                        labels = None
                        if video_writers:
                            labels = read_mask(out_dir / mask_filename(frames_done))
                    else:  # a stop lands before the step or after its mask, not between
                        with signals.interrupts_deferred():
                            labels = tracker.step(frame)
                            if mask_writer is not None:
                                mask_writer.write(frames_done, labels)
                                if (frames_done + 1) % resume.STATE_EVERY == 0:
                                    snapshot = tracker.snapshot()
                                    mask_writer.after_masks(save_state(frames_done + 1, snapshot))
                    for video_writer in video_writers:
                        video_writer.write(frame, labels)
                    frames_done += 1
                    progress(frames_done, source.num_frames)
        summary_warnings = [str(w.message) for w in caught]
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM / SIGHUP under the CLI
        interrupted = True
        stop_signal = signals.stop_signal(exc)
    except VosError as exc:  # a write, the decoder or a frame failed part-way
        failure = exc
    except BaseException:
        _close_all([mask_writer, *video_writers], quiet=True)
        raise
    # Flush and close writers on every path: what was written stays valid.
    failure = _close_all([mask_writer, *video_writers], quiet=failure is not None) or failure
    masks_written = mask_writer.written if mask_writer is not None else 0
    on_disk = resumed_at + masks_written if mask_writer is not None else 0
    finished = failure is None and not interrupted
    if mask_writer is not None:
        if finished:
            resume.remove_state(out_dir)  # type: ignore[arg-type]
        elif not mask_writer.failed and tracker.frame_index == on_disk:
            # the tracker is where the masks on disk end (it changes its state only as a
            # frame's last step, see Tracker._step): continue from right here
            with contextlib.suppress(VosError):
                save_state(on_disk, tracker.snapshot())()
    if failure is not None:
        raise _partial(failure, frames_done, on_disk, out_dir, source)
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
        stop_signal=stop_signal,
        resumed_at=resumed_at,
    )


def _add_first_mask(
    labels: np.ndarray, given: dict[int, np.ndarray], size: tuple[int, int]
) -> np.ndarray:
    """Frame 0's label map with the in-memory mask's objects added after the --mask ids."""
    if (labels.shape[1], labels.shape[0]) != size:
        raise VosError(
            f"the frame-0 mask is {labels.shape[1]}x{labels.shape[0]}, the video {size[0]}x{size[1]}"
        )
    offset = max((max(object_ids(m), default=0) for m in given.values()), default=0)
    ids = object_ids(labels)
    if not ids:
        raise VosError("the mask made from --box / --point holds no object")
    if offset + max(ids) > 254:
        raise VosError(
            f"too many objects: ids would pass 254 ({offset} from --mask, {len(ids)} more)"
        )
    extra = np.where((labels > 0) & (labels < 255), labels.astype(np.int32) + offset, 0)
    base = given.get(0)
    if base is None:
        return extra.astype(np.uint8)
    return np.where((base == 0) & (extra > 0), extra, base).astype(np.uint8)


def _restore(
    state: dict[str, Any],
    tracker: Tracker,
    device: str,
    out_dir: Path,
    videos: tuple[Path | None, Path | None, Path | None],
    notify: Notify,
) -> int:
    """Continue the stopped run: its tracker back, its temp files gone; the frame to go on at."""
    resumed_at = int(state["frame"])
    tracker.restore(state["tracker"])
    overlay, cutout, matte = videos
    cutout_folder = cutout is not None and cutout.is_dir()
    removed = resume.remove_leftovers(
        out_dir,
        [p for p in (overlay, matte, None if cutout_folder else cutout) if p is not None],
        [cutout] if cutout is not None and cutout_folder else [],
    )
    redone = ", ".join(str(p) for p in videos if p is not None)
    notify(
        (
            f"resuming at frame {resumed_at}: the {resumed_at} masks before it are kept"
            if resumed_at
            else "resuming at frame 0: the stopped run saved no state past its start"
        )
        + (f"; {redone} encoded again from frame 0" if redone else "")
        + (f"; {removed} temp file(s) of the stopped run removed" if removed else "")
    )
    if state["device"] != device:
        notify(
            f"the run started on {state['device']} and goes on on {device}: masks from "
            f"frame {resumed_at} on may differ slightly from an uninterrupted run's"
        )
    return resumed_at


def _key(path: Path) -> str:
    return str(path.expanduser().resolve(strict=False))


def _state_to_resume(
    request: SegmentRequest, out_dir: Path | None, run: dict[str, Any]
) -> dict[str, Any] | None:
    """With --resume, the interrupted run's state (checked against this run); None otherwise.

    Without --resume, a folder that holds an unfinished run is refused unless --force.
    """
    if not request.resume:
        if out_dir is not None and not request.force and resume.state_path(out_dir).is_file():
            raise VosError(
                f"{out_dir} holds a run that did not finish; continue it with --resume, or "
                "start over with --force"
            )
        return None
    if request.force:
        raise VosError("--resume continues a run and --force starts over: give one of them")
    if out_dir is None:
        raise VosError(
            "--resume continues from the masks of the stopped run: give its --out folder"
        )
    if not out_dir.is_dir():
        raise VosError(f"--resume: {out_dir} does not exist; nothing to continue")
    state = resume.load_state(out_dir)
    if state is None:
        raise VosError(
            f"--resume: {out_dir} holds no unfinished run (a finished run leaves no state; "
            "a run without masks cannot be resumed)"
        )
    resume.check_same_run(state, run, out_dir)
    resume.check_masks_present(out_dir, int(state["frame"]))
    return state


def _close_all(writers: list[Any], quiet: bool = False) -> VosError | None:
    """Close every writer (each flushes and keeps a valid file), even when one fails.

    Returns the first writer's VosError (None if all closed cleanly); with ``quiet`` (another
    error is on its way) writer errors are dropped.
    """
    first: VosError | None = None
    other: BaseException | None = None
    for writer in writers:
        if writer is None:
            continue
        try:
            writer.close()
        except VosError as exc:
            first = first or exc
        except KeyboardInterrupt as exc:  # a second Ctrl-C: the others still finish quickly
            other = other or exc
        except Exception as exc:
            if not quiet:
                other = other or exc
    if other is not None:
        raise other
    return None if quiet else first


def _partial(
    cause: VosError, frames_done: int, on_disk: int, out_dir: Path | None, source: Any
) -> PartialRunError:
    """``cause`` with what the run leaves behind, as the one line the user reads."""
    message = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    if out_dir is not None:
        total = source.num_frames
        of = "" if total is None else f" of {'' if source.path.is_dir() else 'about '}{total:,}"
        full = any(text in message for text in ("No space left", "Disk quota exceeded"))
        when = "before the disk filled" if full else "before stopping"
        if not on_disk:
            message += "; no mask was written"
        else:
            message += f"; wrote {on_disk:,}{of} masks to {out_dir} {when}, all valid"
            if isinstance(cause, (WriteError, DecoderError)):
                message += " (--resume continues from them)"
    return PartialRunError(message, cause, frames_done, on_disk, out_dir)


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
