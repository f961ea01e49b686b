"""A video written frame by frame through ffmpeg, in a background thread, atomically.

The machinery every video output shares (the overlay, the cut-out, the matte): subclasses say how
to encode (:meth:`FfmpegWriter._setup`, which also checks the name and takes the subclass's own
arguments) and how a frame and its label map become the picture ffmpeg encodes
(:meth:`FfmpegWriter._render`). Rendering and encoding (an ffmpeg process,
:class:`~vos_cli.io.ffmpeg.FfmpegEncoder`) run in one worker thread (a single-worker
``ThreadPoolExecutor``, a bounded number of frames ahead) so they overlap with the network. A video file appears under its final name only once the encoder has
finished cleanly (ffmpeg's exit status 0), and it does so also when the run stops early (exception,
Ctrl-C): what was written up to then is kept as a valid, shorter video rather than a broken file.
An encoder that fails (a full disk, an I/O error, ffmpeg killed) is a
:class:`~vos_cli.errors.WriteError` naming the file and the cause, and its temp file is removed.
An image sequence (``folder/%05d.png``) is written by ffmpeg file by file, each file atomically.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vos_cli.errors import VosError, WriteError
from vos_cli.io.atomic import temp_beside
from vos_cli.io.closing import Closing
from vos_cli.io.ffmpeg import FfmpegEncoder

__all__ = ["Encoding", "FfmpegWriter"]


def _reason(err: BaseException) -> str:
    """A worker exception as the cause in a one-line message."""
    text = str(err).strip()
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return text.splitlines()[0] if text else type(err).__name__


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


@dataclass(frozen=True)
class Encoding:
    """How ffmpeg encodes a writer's pictures.

    ``pix_fmt_in`` is what :meth:`FfmpegWriter._render` returns, ``pix_fmt_out`` what the file
    stores. With ``even_size`` (yuv420p H.264 needs it) an odd width or height is padded by one
    pixel. With ``sequence`` set (a file name pattern such as ``%05d.png``), the path is a folder
    that ffmpeg fills file by file.
    """

    codec: str
    pix_fmt_in: str = "rgb24"
    pix_fmt_out: str = "yuv420p"
    output_params: tuple[str, ...] = ()
    even_size: bool = False
    sequence: str | None = None


class FfmpegWriter(Closing):
    """Encode ``(frame, label map)`` pairs into a video: ``with Writer(...) as w: w.write(f, m)``.

    ``Writer(path, fps, width, height, *args, maxsize=4, **options)``: ``args`` and ``options``
    are those of the subclass's :meth:`_setup` (the base class takes :class:`Encoding`'s fields).
    The video is encoded into a hidden temp file next to ``path`` and renamed into place by
    :meth:`close`. Leaving the ``with`` block on an exception (including Ctrl-C) finishes the
    frames already handed over, closes the encoder cleanly and still renames, so the target is a
    valid, shorter video; the exception then propagates. If the encoder fails (then
    :class:`WriteError`), or no frame was written, the temp file is removed and nothing is
    created. With :attr:`Encoding.sequence`, ``path`` is a folder that ffmpeg fills file by file
    instead.

    An odd width or height is padded (with :attr:`Encoding.even_size`) by one pixel (a copy of
    the last column / row) on the right / bottom. Frames and masks passed to :meth:`write` are
    copied, so callers may reuse buffers. At most ``maxsize`` frames wait besides the one being
    encoded.
    """

    #: What the file is, for messages ("Cannot write overlay x.mp4: ...").
    what = "video"

    def __init__(
        self,
        path: str | Path,
        fps: float | Fraction,
        width: int,
        height: int,
        *args: Any,
        maxsize: int = 4,
        **options: Any,
    ) -> None:
        self.path = Path(path)
        encoding = self._setup(self.path, *args, **options)
        if fps <= 0 or width <= 0 or height <= 0:
            raise ValueError(f"bad {self.what} geometry: {width}x{height} at {fps} fps")
        self.fps = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator()
        self.width = int(width)
        self.height = int(height)
        self.frames_written = 0
        even = encoding.even_size
        self._enc_w = self.width + self.width % 2 if even else self.width
        self._enc_h = self.height + self.height % 2 if even else self.height
        self._sequence = encoding.sequence
        if self._sequence is None:
            try:
                # ffmpeg picks the container by suffix
                fd, tmp = temp_beside(self.path, suffix=f".partial{self.path.suffix}")
                os.close(fd)
            except OSError as err:
                raise self._error_for(err.strerror or str(err)) from None
            self._tmp = Path(tmp)
            # absolute path: ffmpeg must not read a 'name:' prefix as a protocol
            target = os.path.abspath(self._tmp)
        else:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise self._error_for(err.strerror or str(err)) from None
            target = os.path.abspath(self.path / self._sequence)
        self._target = target
        self._encoding = encoding
        self._encoder: FfmpegEncoder | None = None  # used only in the worker
        self._error: str | None = None  # why the encoder failed, first reason only
        self._closed = False
        self._abort = threading.Event()  # second Ctrl-C: skip queued frames, just finish
        self._maxsize = maxsize
        self._pending: deque[Future[None]] = deque()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.what}-writer")
        self._pending.append(self._worker.submit(self._job, self._start))

    # -- what subclasses provide ------------------------------------------------------------

    def _setup(self, path: Path, **encoding: Any) -> Encoding:
        """Check ``path``, keep the subclass's arguments, say how to encode; before anything."""
        return Encoding(**encoding)

    def _render(self, frame: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """The picture to encode (H x W x channels of ``pix_fmt_in``); runs in the worker."""
        raise NotImplementedError

    # -- worker -----------------------------------------------------------------------------

    def _job(self, step: Callable[..., None], *args: Any) -> None:
        """Run one step in the worker, none after a failure or a second Ctrl-C; a failure is
        kept for the caller's thread and stops the encoder at once."""
        if self._error is not None or self._abort.is_set():
            return
        try:
            step(*args)
        except BaseException as err:  # re-raised in the caller's thread
            self._error = _reason(err)
            self._close_encoder()

    def _start(self) -> None:
        encoding = self._encoding
        self._encoder = FfmpegEncoder(
            self._target,
            (self._enc_w, self._enc_h),
            self.fps,
            encoding.codec,
            encoding.pix_fmt_in,
            encoding.pix_fmt_out,
            list(encoding.output_params),
        )

    def _encode(self, frame: np.ndarray, labels: np.ndarray) -> None:
        out = self._render(frame, labels)
        if (self._enc_w, self._enc_h) != (self.width, self.height):
            pad = [(0, self._enc_h - self.height), (0, self._enc_w - self.width)]
            out = np.pad(out, pad + [(0, 0)] * (out.ndim - 2), mode="edge")
        assert self._encoder is not None
        try:
            self._encoder.write(out)
        except OSError:  # ffmpeg is gone: its exit status and log say why
            encoder, self._encoder = self._encoder, None
            self._error = self._error or encoder.finish() or "the ffmpeg encoder stopped"
            return
        self.frames_written += 1

    def _close_encoder(self) -> None:
        """Last job in the worker (also after a failure): let ffmpeg finish the file."""
        encoder, self._encoder = self._encoder, None
        if encoder is not None:
            failure = encoder.finish()  # stdin closed, waits for ffmpeg to finish the file
            # with no frame there is no file to keep, and ffmpeg's complaint about it is moot
            if failure is not None and self.frames_written > 0:
                self._error = self._error or failure
        if self._error is None and self.frames_written > 0 and not self._has_output():
            self._error = "the ffmpeg encoder wrote nothing"

    def _has_output(self) -> bool:
        if self._sequence is None:
            return _size(self._tmp) > 0
        return _size(self.path / (self._sequence % 0)) > 0

    # -- producer ---------------------------------------------------------------------------

    def write(self, frame_rgb: np.ndarray, label_map: np.ndarray) -> None:
        """Queue one frame (HxWx3 uint8 RGB) and its label map (HxW ids)."""
        if self._closed:
            raise ValueError(f"{type(self).__name__} is closed")
        frame = np.asarray(frame_rgb)
        labels = np.asarray(label_map)
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"frame must be {self.height}x{self.width}x3 uint8, got {frame.shape} {frame.dtype}"
            )
        if labels.shape != (self.height, self.width):
            raise ValueError(f"label map must be {self.height}x{self.width}, got {labels.shape}")
        self._check_worker()
        item = (frame.copy(), labels.astype(np.uint8, copy=True))
        while len(self._pending) > self._maxsize:  # jobs never raise: errors are in _error
            self._pending.popleft().result()
        self._check_worker()
        self._pending.append(self._worker.submit(self._job, self._encode, *item))

    def _check_worker(self) -> None:
        if self._error is not None:
            self._finish(keep=False)
            self._raise_error()

    def _error_for(self, reason: str) -> WriteError:
        return WriteError(f"Cannot write {self.what} {self.path}: {reason}")

    def _raise_error(self) -> None:
        raise self._error_for(self._error or "the ffmpeg encoder failed") from None

    def _finish(self, keep: bool) -> bool:
        """Stop the worker (after queued frames) and move/remove the temp file.

        Returns True when the target file was created.
        """
        if self._closed:
            return False
        self._closed = True
        self._pending.clear()
        # waiting on the last job, not joining the thread: an interrupted Thread.join() may
        # later return while the thread still runs (CPython < 3.13)
        last = self._worker.submit(self._close_encoder)
        self._worker.shutdown(wait=False)  # the worker ends after the last job
        try:
            last.result()
        except KeyboardInterrupt:
            # Ctrl-C while flushing: drop the queued frames but still finish the file
            self._abort.set()
            last.result()
            self._move_into_place(keep)
            raise
        return self._move_into_place(keep)

    def _move_into_place(self, keep: bool) -> bool:
        ok = keep and self._error is None and self.frames_written > 0
        if self._sequence is not None:
            # ffmpeg wrote each file in place, atomically; one it failed on stays a temp file
            self._remove_partial_frames()
            return ok
        try:
            if ok:
                os.replace(self._tmp, self.path)
            else:
                with contextlib.suppress(FileNotFoundError):
                    self._tmp.unlink()
        except OSError as err:
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            raise self._error_for(err.strerror or str(err)) from None
        return ok

    def _remove_partial_frames(self) -> None:
        """Delete ``00012.png.tmp`` files (``-atomic_writing``) that ffmpeg left on failing."""
        assert self._sequence is not None
        name = re.sub(r"%0?\d*d", r"\\d+", re.escape(self._sequence))
        pattern = re.compile(name + r"\.tmp$")
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.path):
                if pattern.match(entry.name):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)

    def close(self) -> None:
        """Finish encoding and move the video into place; raises VosError if ffmpeg failed.

        With no frame written, no file is created.
        """
        if self._closed:
            return
        self._finish(keep=True)
        if self._error is not None:
            self._raise_error()

    def exit(self, exc: BaseException | None) -> None:
        if exc is None:
            self.close()
            return
        # Stopping early: keep what was written as a valid shorter video, but let the
        # original exception (not an encoder error) propagate.
        with contextlib.suppress(VosError):
            self._finish(keep=True)
