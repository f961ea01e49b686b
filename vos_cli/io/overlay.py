"""Overlay video: the input frames with translucent, outlined object masks, as H.264.

Rendering (vectorised numpy) and encoding (ffmpeg via ``imageio_ffmpeg.write_frames``)
run in a background thread so they overlap with the network. The file appears under its
final name only once the encoder has finished cleanly, and it does so also when the run
stops early (exception, Ctrl-C): what was written up to then is kept as a valid, shorter
video rather than a broken file.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import imageio_ffmpeg
import numpy as np

from vos_cli.errors import VosError
from vos_cli.io.atomic import temp_beside
from vos_cli.io.masks import DAVIS_PALETTE, VOID_ID

__all__ = ["OVERLAY_SUFFIXES", "OverlayWriter", "render_overlay"]

#: Containers we can write H.264 into (chosen by ffmpeg from the suffix).
OVERLAY_SUFFIXES: frozenset[str] = frozenset({".mp4", ".m4v", ".mov", ".mkv"})


def render_overlay(
    frame: np.ndarray, label_map: np.ndarray, alpha: float = 0.5, outline_px: int = 2
) -> np.ndarray:
    """Blend object colours (DAVIS palette, one per id) into ``frame`` and outline objects.

    Background (0) and void (255) are left untouched. The outline is the ``outline_px``
    pixels of each object next to a different label, drawn opaque in the object's colour,
    so touching objects stay distinguishable. Returns a new HxWx3 uint8 array.
    """
    frame = np.asarray(frame)
    labels = np.asarray(label_map)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be HxWx3 uint8, got {frame.shape} {frame.dtype}")
    if labels.shape != frame.shape[:2]:
        raise ValueError(f"label map {labels.shape} does not match frame {frame.shape[:2]}")
    labels = labels.astype(np.uint8, copy=False)
    out = frame.copy()
    flat_labels = labels.reshape(-1)
    flat_out = out.reshape(-1, 3)
    # work on object pixels only: cost follows the object area, not the frame size
    idx = np.flatnonzero((flat_labels != 0) & (flat_labels != VOID_ID))
    if idx.size == 0:
        return out
    a = int(round(float(np.clip(alpha, 0.0, 1.0)) * 256))
    colours = DAVIS_PALETTE[flat_labels[idx]].astype(np.uint16)
    blend = (flat_out[idx].astype(np.uint16) * (256 - a) + colours * a) >> 8
    flat_out[idx] = blend.astype(np.uint8)
    if outline_px > 0:
        on_edge = _boundary(labels, outline_px).reshape(-1)[idx]
        flat_out[idx[on_edge]] = colours[on_edge].astype(np.uint8)
    return out


def _boundary(labels: np.ndarray, width: int) -> np.ndarray:
    """Pixels whose label differs from a pixel up to ``width`` steps away (4 directions)."""
    edge = np.zeros(labels.shape, dtype=bool)
    h, w = labels.shape
    for d in range(1, min(width, max(h, w)) + 1):
        if d < w:
            diff = labels[:, d:] != labels[:, :-d]
            edge[:, d:] |= diff
            edge[:, :-d] |= diff
        if d < h:
            diff = labels[d:, :] != labels[:-d, :]
            edge[d:, :] |= diff
            edge[:-d, :] |= diff
    return edge


_STOP = object()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class OverlayWriter:
    """Write an overlay video frame by frame: ``with OverlayWriter(...) as w: w.write(f, m)``.

    Output: H.264 (libx264, yuv420p), same fps and size as the input. yuv420p needs even
    dimensions; an odd width or height is padded by one pixel (a copy of the last column /
    row) on the right / bottom, so such videos come out one pixel larger; even sizes are
    kept exactly.

    The video is encoded into a hidden temp file next to ``path`` and renamed into place
    by :meth:`close`. Leaving the ``with`` block on an exception (including Ctrl-C)
    finishes the frames already handed over, closes the encoder cleanly and still renames,
    so the target is a valid, shorter video; the exception then propagates. If the encoder
    fails, or no frame was written, the temp file is removed and nothing is created.
    Frames and masks passed to :meth:`write` are copied, so callers may reuse buffers.
    """

    _POLL_S = 0.1

    def __init__(
        self,
        path: str | Path,
        fps: float,
        width: int,
        height: int,
        *,
        alpha: float = 0.5,
        outline_px: int = 2,
        crf: int = 20,
        preset: str = "veryfast",
        maxsize: int = 4,
    ) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in OVERLAY_SUFFIXES:
            allowed = ", ".join(sorted(OVERLAY_SUFFIXES))
            raise VosError(f"Overlay file must end with one of {allowed}: {self.path}")
        if fps <= 0 or width <= 0 or height <= 0:
            raise ValueError(f"bad overlay geometry: {width}x{height} at {fps} fps")
        self.fps = float(fps)
        self.width = int(width)
        self.height = int(height)
        self.alpha = alpha
        self.outline_px = outline_px
        self.frames_written = 0
        # encoded size: rounded up to even for yuv420p
        self._enc_w = self.width + self.width % 2
        self._enc_h = self.height + self.height % 2
        try:
            # ffmpeg picks the container by suffix
            fd, tmp = temp_beside(self.path, suffix=f".partial{self.path.suffix}")
            os.close(fd)
        except OSError as err:
            raise VosError(f"Cannot write overlay {self.path}: {err.strerror or err}") from None
        self._tmp = Path(tmp)
        output_params = ["-preset", preset, "-crf", str(int(crf))]
        if self.path.suffix.lower() in (".mp4", ".m4v", ".mov"):
            output_params += ["-movflags", "+faststart"]  # index first: plays while streaming
        self._encoder_args: dict[str, Any] = {
            "size": (self._enc_w, self._enc_h),
            "fps": self.fps,
            "codec": "libx264",
            "pix_fmt_out": "yuv420p",
            "quality": None,  # rate control given explicitly through -crf
            "macro_block_size": 1,  # never let imageio rescale the frames
            "ffmpeg_log_level": "error",  # keep ffmpeg's chatter out of the progress display
            "output_params": output_params,
        }
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._error: BaseException | None = None
        self._closed = False
        self._abort = threading.Event()  # second Ctrl-C: skip queued frames, just finish
        self._thread = threading.Thread(target=self._work, name="overlay-writer", daemon=True)
        self._thread.start()

    # -- worker -------------------------------------------------------------------------

    def _work(self) -> None:
        """Render + encode queued frames; owns the ffmpeg generator from start to end."""
        encoder = None
        try:
            # absolute path: ffmpeg must not read a 'name:' prefix as a protocol
            target = os.path.abspath(self._tmp)
            encoder = imageio_ffmpeg.write_frames(target, **self._encoder_args)
            encoder.send(None)  # starts ffmpeg
            while not self._abort.is_set():
                try:
                    item = self._queue.get(timeout=self._POLL_S)
                except queue.Empty:
                    continue
                if item is _STOP:
                    break
                frame, labels = item
                out = render_overlay(frame, labels, self.alpha, self.outline_px)
                if (self._enc_w, self._enc_h) != (self.width, self.height):
                    pad = ((0, self._enc_h - self.height), (0, self._enc_w - self.width), (0, 0))
                    out = np.pad(out, pad, mode="edge")
                encoder.send(np.ascontiguousarray(out))
                self.frames_written += 1
        except BaseException as err:  # re-raised in the caller's thread
            self._error = err
            while True:  # drain so a producer blocked in put() wakes up
                try:
                    if self._queue.get_nowait() is _STOP:
                        break
                except queue.Empty:
                    break
        finally:
            if encoder is not None:
                try:
                    encoder.close()  # stdin closed, waits for ffmpeg to finish the file
                except BaseException as err:
                    self._error = self._error or err
            # write_frames ignores ffmpeg's exit status; an encoder that failed before
            # the pipe filled up is only visible as an empty file
            if self._error is None and self.frames_written > 0 and _size(self._tmp) == 0:
                self._error = RuntimeError("the ffmpeg encoder stopped (see its message above)")

    # -- producer -----------------------------------------------------------------------

    def write(self, frame_rgb: np.ndarray, label_map: np.ndarray) -> None:
        """Queue one frame (HxWx3 uint8 RGB) and its label map (HxW ids)."""
        if self._closed:
            raise ValueError("OverlayWriter is closed")
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
        while True:
            try:
                self._queue.put(item, timeout=self._POLL_S)
                return
            except queue.Full:
                self._check_worker()

    def _check_worker(self) -> None:
        if self._error is not None or not self._thread.is_alive():
            self._finish(keep=False)
            self._raise_error()

    def _raise_error(self) -> None:
        err = self._error
        if err is None:
            raise VosError(f"Overlay encoder stopped unexpectedly: {self.path}")
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "Broken pipe" in msg:  # ffmpeg exited; it printed its reason on stderr
            msg = "the ffmpeg encoder stopped (see its message above)"
        raise VosError(f"Cannot write overlay {self.path}: {msg}") from None

    def _finish(self, keep: bool) -> bool:
        """Stop the worker (after queued frames) and move/remove the temp file.

        Returns True when the target file was created.
        """
        if self._closed:
            return False
        self._closed = True
        if self._thread.is_alive():
            interrupted = False
            try:
                self._queue.put(_STOP)
                self._thread.join()
            except KeyboardInterrupt:
                # Ctrl-C while flushing: drop the queued frames but still finish the file
                interrupted = True
                self._abort.set()
                self._thread.join()
            if interrupted:
                self._move_into_place(keep)
                raise KeyboardInterrupt
        return self._move_into_place(keep)

    def _move_into_place(self, keep: bool) -> bool:
        ok = keep and self._error is None and self.frames_written > 0
        try:
            if ok:
                os.replace(self._tmp, self.path)
            else:
                with contextlib.suppress(FileNotFoundError):
                    self._tmp.unlink()
        except OSError as err:
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            raise VosError(f"Cannot write overlay {self.path}: {err.strerror or err}") from None
        return ok

    def close(self) -> None:
        """Finish encoding and move the video into place; raises VosError if ffmpeg failed.

        With no frame written, no file is created.
        """
        if self._closed:
            return
        self._finish(keep=True)
        if self._error is not None:
            self._raise_error()

    def __enter__(self) -> OverlayWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        # Stopping early: keep what was written as a valid shorter video, but let the
        # original exception (not an encoder error) propagate.
        with contextlib.suppress(VosError):
            self._finish(keep=True)
