"""Streamed frame sources: video files (through ffmpeg) and folders of image frames.

Frames are produced one at a time so memory does not grow with the length of the video.
Every problem the user can cause (missing path, not a video, undecodable file, empty or
inconsistent frame folder) is raised as :class:`~vos_cli.errors.VosError` with a one-line
message. A video that is cut short is *not* an error: the decodable frames are yielded,
then ``truncated`` is set and a :class:`TruncatedVideoWarning` is emitted, so a long run
on a damaged file still produces masks for everything that could be read.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar

import imageio_ffmpeg
import numpy as np
from PIL import Image, UnidentifiedImageError

from vos_cli.errors import VosError

__all__ = [
    "DEFAULT_FOLDER_FPS",
    "FRAME_EXTENSIONS",
    "FolderFrameSource",
    "FrameSource",
    "Prefetcher",
    "TruncatedVideoWarning",
    "VideoFileSource",
    "natural_sort_key",
    "open_frames",
]

#: Image suffixes (case-insensitive) picked up from a frame folder; everything else is ignored.
FRAME_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png"})

#: A folder of frames has no frame rate; DAVIS sequences were shot at 24 fps.
DEFAULT_FOLDER_FPS: float = 24.0

#: Used when ffmpeg cannot tell the frame rate (reported as 0); only matters for overlays.
_FALLBACK_VIDEO_FPS: float = 25.0

# ffmpeg can "decode" text art (.txt/.nfo/.ans ...) through its tty/bintext demuxers;
# those are text files, never videos the user meant.
_TEXT_CODECS: frozenset[str] = frozenset({"ansi", "bintext", "xbin", "idf"})


class TruncatedVideoWarning(UserWarning):
    """A video ended before its header said it would (file cut short or damaged).

    The message is a single line, meant to be shown to the user as-is.
    """


class FrameSource(ABC):
    """A stream of HxWx3 ``uint8`` RGB frames, one at a time.

    Attributes:
        path: the video file or frame folder.
        fps: frames per second (for folders: the value given to :func:`open_frames`).
        width, height: frame size in pixels; every frame has exactly this size.
        num_frames: best estimate of the frame count (exact for folders, from ffmpeg's
            duration x fps for videos), ``None`` when unknown. Use it for progress bars only.
        truncated: set to True once iteration hit the early end of a damaged video.
        frames_read: frames yielded by the most recent iteration.
    """

    path: Path
    fps: float
    width: int
    height: int
    num_frames: int | None
    truncated: bool
    frames_read: int

    @abstractmethod
    def __iter__(self) -> Iterator[np.ndarray]:
        """Yield frames in order; each call starts again from the first frame."""

    @abstractmethod
    def close(self) -> None:
        """Release decoders and subprocesses; safe to call more than once, from any thread."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __length_hint__(self) -> int:
        """Estimated frame count for ``operator.length_hint`` (progress bars); 0 if unknown.

        Deliberately not ``__len__``: the count of a video is an estimate, and ``len()``
        (or ``if source:``) must not fail or lie when it is unknown.
        """
        return self.num_frames or 0


def natural_sort_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders ``frame2`` before ``frame10`` (digit runs compare as numbers).

    Zero-padded names (``00000.jpg`` ...) sort the same as with plain string order, so
    DAVIS-style folders are unaffected; unpadded exports from other tools also work.
    Ties (``1.png`` vs ``01.png``) fall back to the plain name so the order is total.
    """
    parts = re.split(r"(\d+)", name.lower())
    key = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)
    return (key, name)


def open_frames(source: str | Path, *, folder_fps: float = DEFAULT_FOLDER_FPS) -> FrameSource:
    """Open a video file (anything ffmpeg decodes) or a folder of .jpg/.jpeg/.png frames.

    Folder frames are taken in natural name order (see :func:`natural_sort_key`); hidden
    files (names starting with ``.``) and other suffixes are ignored. The source is checked
    now (header decoded, frame sizes compared) so that errors surface before any compute.

    Raises:
        VosError: the path is missing, is not a video, cannot be decoded, or is a folder
            without frames or with frames of different sizes.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise VosError(f"Video not found: {path}")
    if path.is_dir():
        return FolderFrameSource(path, fps=folder_fps)
    if not path.is_file():
        raise VosError(f"Not a video file or frame folder: {path}")
    return VideoFileSource(path)


# --------------------------------------------------------------------------------------
# Video files


def _ffmpeg_reason(text: str) -> str:
    """Pick the most telling line of an ffmpeg error log, for a one-line message."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if any("moov atom not found" in ln for ln in lines):
        return "the file is incomplete (MP4 index missing, e.g. the file was cut short)"
    if any("does not contain any stream" in ln for ln in lines):
        return "it has no video stream"
    for ln in reversed(lines):
        m = re.search(r"Error opening input(?: file)?: (.+)", ln)
        if m:
            return m.group(1).strip().rstrip(".")
    for ln in reversed(lines):
        if "error" in ln.lower() or "invalid" in ln.lower():
            # drop ffmpeg's "[in#0 @ 0x...] " context prefix
            return re.sub(r"^\[[^\]]*\]\s*", "", ln)[:200]
    return "ffmpeg could not read it"


class VideoFileSource(FrameSource):
    """Frames of a video file, decoded by ffmpeg (``imageio_ffmpeg.read_frames``).

    ffmpeg runs as a subprocess and streams raw RGB frames through a pipe; its own
    ``-f image2pipe`` output keeps the decoded frames as they are (no frame-rate
    conversion, rotation metadata applied).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.truncated = False
        self.frames_read = 0
        self._closed = False
        self._lock = threading.Lock()
        self._active: Generator[Any, Any, None] | None = None
        gen, meta = self._start()
        self._pending: Generator[Any, Any, None] | None = gen
        self.width, self.height = (int(v) for v in meta["size"])
        fps = float(meta.get("fps") or 0.0)
        duration = float(meta.get("duration") or 0.0)
        self.fps = fps if fps > 0 else _FALLBACK_VIDEO_FPS
        estimate = round(duration * fps) if fps > 0 and duration > 0 else 0
        self.num_frames = estimate if estimate > 0 else None
        self.codec = str(meta.get("codec", ""))

    def _start(self) -> tuple[Generator[Any, Any, None], dict[str, Any]]:
        """Start ffmpeg and read the header; the returned generator yields raw frames."""
        # absolute path: ffmpeg would read a name like 'concat:x' or 'http:x' as a protocol
        gen = imageio_ffmpeg.read_frames(os.path.abspath(self.path))
        try:
            meta = next(gen)
        except (OSError, RuntimeError, StopIteration) as err:
            gen.close()
            raise VosError(
                f"Cannot read {self.path} as a video: {_ffmpeg_reason(str(err))}"
            ) from None
        except BaseException:
            gen.close()
            raise
        codec = str(meta.get("codec", ""))
        size = meta.get("size") or (0, 0)
        if codec in _TEXT_CODECS:
            gen.close()
            raise VosError(f"Not a video: {self.path} (looks like a text file)")
        if size[0] <= 0 or size[1] <= 0:
            gen.close()
            raise VosError(f"Cannot read {self.path} as a video: it has no picture size")
        return gen, meta

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._closed:
            raise ValueError(f"frame source {self.path} is closed")
        with self._lock:
            gen, self._pending = self._pending, None
        if gen is None:
            gen, _ = self._start()
        return self._frames(gen)

    def _frames(self, gen: Generator[Any, Any, None]) -> Iterator[np.ndarray]:
        self._active = gen
        self.truncated = False
        self.frames_read = 0
        shape = (self.height, self.width, 3)
        cut_short = False
        try:
            while not self._closed:
                try:
                    raw = next(gen)
                except StopIteration:
                    break
                except RuntimeError:
                    # read_frames raises when ffmpeg stopped in the middle of a frame
                    cut_short = True
                    break
                # copy: frombuffer over bytes is read-only, and torch wants writable arrays
                frame = np.frombuffer(raw, dtype=np.uint8).reshape(shape).copy()
                self.frames_read += 1
                yield frame
        finally:
            gen.close()
            self._active = None
        if self._closed:
            return
        if self.frames_read == 0:
            raise VosError(f"Cannot decode video {self.path}: no frame could be decoded")
        expected = self.num_frames
        # duration x fps is rounded to 10 ms and may include a slightly longer audio
        # track, so allow a few frames of slack before calling the file truncated.
        if expected is not None:
            cut_short |= self.frames_read < expected - max(3, round(0.02 * expected))
        if cut_short:
            self.truncated = True
            about = f" of about {expected}" if expected else ""
            warnings.warn(
                f"Video {self.path} ended early ({self.frames_read}{about} frames decoded); "
                "the file looks truncated or damaged",
                TruncatedVideoWarning,
                stacklevel=2,
            )

    def close(self) -> None:
        self._closed = True
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            pending.close()
        active = self._active
        if active is not None:
            # stops ffmpeg now; ValueError: running in another thread, which then stops
            # after the current frame because _closed is set
            with contextlib.suppress(ValueError):
                active.close()


# --------------------------------------------------------------------------------------
# Frame folders


class FolderFrameSource(FrameSource):
    """Frames stored as image files in one folder, taken in natural name order."""

    def __init__(self, path: Path, fps: float = DEFAULT_FOLDER_FPS) -> None:
        if fps <= 0:
            raise VosError(f"Frame rate must be positive, got {fps}")
        self.path = path
        self.fps = float(fps)
        self.truncated = False
        self.frames_read = 0
        self._closed = False
        try:
            files = [
                p
                for p in path.iterdir()
                if p.suffix.lower() in FRAME_EXTENSIONS
                and not p.name.startswith(".")
                and p.is_file()
            ]
        except OSError as err:
            raise VosError(f"Cannot list frame folder {path}: {err.strerror or err}") from None
        if not files:
            exts = "/".join(sorted(FRAME_EXTENSIONS))
            raise VosError(f"No {exts} frames in folder {path}")
        files.sort(key=lambda p: natural_sort_key(p.name))
        self.files: list[Path] = files
        self.num_frames = len(files)
        self.width, self.height = self._check_sizes(files)

    @staticmethod
    def _check_sizes(files: list[Path]) -> tuple[int, int]:
        """Read every header (cheap: no pixel decoding) so a bad folder fails up front."""
        first: tuple[int, int] | None = None
        for p in files:
            size = _image_size(p)
            if first is None:
                first = size
            elif size != first:
                raise VosError(
                    f"Frames differ in size: {files[0].name} is {first[0]}x{first[1]} "
                    f"but {p.name} is {size[0]}x{size[1]} (in {p.parent})"
                )
        assert first is not None
        return first

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._closed:
            raise ValueError(f"frame source {self.path} is closed")
        return self._frames()

    def _frames(self) -> Iterator[np.ndarray]:
        self.frames_read = 0
        for p in self.files:
            if self._closed:
                return
            try:
                with Image.open(p) as img:
                    frame = np.array(img.convert("RGB"))  # writable, like video frames
            except (OSError, UnidentifiedImageError) as err:
                raise VosError(f"Cannot read frame {p}: {err}") from None
            if frame.shape[:2] != (self.height, self.width):  # file changed since open
                raise VosError(f"Frame {p} changed size while reading")
            self.frames_read += 1
            yield frame

    def close(self) -> None:
        self._closed = True


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, UnidentifiedImageError) as err:
        reason = "not an image" if isinstance(err, UnidentifiedImageError) else str(err)
        raise VosError(f"Cannot read frame {path}: {reason}") from None


# --------------------------------------------------------------------------------------
# Background prefetching

T = TypeVar("T")


class _Failure:
    """Carries an exception from the worker thread to the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


class Prefetcher(Generic[T]):
    """Iterate ``iterable`` in a background thread, a few items ahead of the consumer.

    Used to overlap video decoding with the network. The queue is bounded (``maxsize``)
    so memory stays flat. Exceptions raised by the iterable are re-raised in the
    consumer, at the position where they happened. :meth:`close` (also on leaving a
    ``with`` block) stops the worker and closes the underlying iterator within a frame,
    so Ctrl-C in the consumer does not hang; the worker is a daemon thread, so a stuck
    decoder can never keep the process alive either.
    """

    _POLL_S = 0.1

    def __init__(self, iterable: Iterable[T], maxsize: int = 4, name: str = "prefetch") -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._work, args=(iterable,), name=name, daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        """Put unless stopped; False when the consumer has gone away."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=self._POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, iterable: Iterable[T]) -> None:
        it: Iterator[T] | None = None
        try:
            it = iter(iterable)
            for item in it:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as err:  # handed to the consumer
            self._put(_Failure(err))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):  # nothing useful to do with it here
                    close()

    def __iter__(self) -> Prefetcher[T]:
        return self

    def __next__(self) -> T:
        while not self._finished:
            try:
                item = self._queue.get(timeout=self._POLL_S)
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    self._finished = True  # worker stopped without a marker (closed)
                continue
            if item is _DONE:
                self._finished = True
            elif isinstance(item, _Failure):
                self._finished = True
                raise item.error
            else:
                return item
        raise StopIteration

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker and wait (bounded) for it to release the iterator."""
        self._finished = True
        self._stop.set()
        while True:  # drop queued items so a worker blocked in put() sees the stop flag
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
