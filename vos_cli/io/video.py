"""Streamed frame sources: video files (through ffmpeg) and folders of image frames.

Frames are produced one at a time so memory does not grow with the length of the video.
Every problem the user can cause (missing path, not a video, undecodable file, empty or
inconsistent frame folder) is raised as :class:`~vos_cli.errors.VosError` with a one-line
message. A video that is cut short is *not* an error: the decodable frames are yielded,
then ``truncated`` is set and a :class:`TruncatedVideoWarning` is emitted, so a long run
on a damaged file still produces masks for everything that could be read.
"""

from __future__ import annotations

import os
import re
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vos_cli.errors import DecoderError, VosError
from vos_cli.io.ffmpeg import FfmpegDecoder
from vos_cli.io.frame_folder import FolderFrameSource
from vos_cli.io.frames import (
    DEFAULT_FOLDER_FPS,
    FRAME_EXTENSIONS,
    FrameSource,
    TruncatedVideoWarning,
    natural_sort_key,
)
from vos_cli.io.prefetch import Prefetcher

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

#: Used when ffmpeg cannot tell the frame rate (reported as 0); only matters for overlays.
_FALLBACK_VIDEO_FPS: float = 25.0

# ffmpeg can "decode" text art (.txt/.nfo/.ans ...) through its tty/bintext demuxers;
# those are text files, never videos the user meant.
_TEXT_CODECS: frozenset[str] = frozenset({"ansi", "bintext", "xbin", "idf"})


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
    """Frames of a video file, decoded by ffmpeg (:class:`~vos_cli.io.ffmpeg.FfmpegDecoder`).

    ffmpeg runs as a subprocess and streams raw RGB frames through a pipe; its own
    ``-f image2pipe`` output keeps the decoded frames as they are (no frame-rate
    conversion, rotation metadata applied). A damaged file is decoded as far as ffmpeg can
    (it skips what it cannot read and exits normally); a decoder that itself fails part-way
    (crashed, killed) raises :class:`~vos_cli.errors.DecoderError` naming the last good frame.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.truncated = False
        self.frames_read = 0
        self._closed = False
        self._lock = threading.Lock()
        self._active: FfmpegDecoder | None = None
        decoder, meta = self._start()
        self._pending: FfmpegDecoder | None = decoder
        self.width, self.height = (int(v) for v in meta["size"])
        fps = float(meta.get("fps") or 0.0)
        duration = float(meta.get("duration") or 0.0)
        self.fps = fps if fps > 0 else _FALLBACK_VIDEO_FPS
        estimate = round(duration * fps) if fps > 0 and duration > 0 else 0
        self.num_frames = estimate if estimate > 0 else None
        self.codec = str(meta.get("codec", ""))

    def _start(self) -> tuple[FfmpegDecoder, dict[str, Any]]:
        """Start ffmpeg and read the header; the decoder then gives raw frames."""
        # absolute path: ffmpeg would read a name like 'concat:x' or 'http:x' as a protocol
        try:
            decoder = FfmpegDecoder(os.path.abspath(self.path))
        except OSError as err:
            raise VosError(
                f"Cannot read {self.path} as a video: {_ffmpeg_reason(str(err))}"
            ) from None
        meta = decoder.meta
        codec = str(meta.get("codec", ""))
        size = meta.get("size") or (0, 0)
        if codec in _TEXT_CODECS:
            decoder.close()
            raise VosError(f"Not a video: {self.path} (looks like a text file)")
        if size[0] <= 0 or size[1] <= 0:
            decoder.close()
            raise VosError(f"Cannot read {self.path} as a video: it has no picture size")
        return decoder, meta

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._closed:
            raise ValueError(f"frame source {self.path} is closed")
        with self._lock:
            decoder, self._pending = self._pending, None
        if decoder is None:
            decoder, _ = self._start()
        return self._frames(decoder)

    def _frames(self, decoder: FfmpegDecoder) -> Iterator[np.ndarray]:
        self._active = decoder
        self.truncated = False
        self.frames_read = 0
        shape = (self.height, self.width, 3)
        cut_short = False
        failure: str | None = None
        try:
            while not self._closed:
                try:
                    raw = decoder.read(self.height * self.width * 3)
                except EOFError:  # ffmpeg stopped in the middle of a frame
                    cut_short = True
                    raw = None
                if raw is None:
                    failure = None if self._closed else decoder.failure()
                    break
                # copy: frombuffer over bytes is read-only, and torch wants writable arrays
                frame = np.frombuffer(raw, dtype=np.uint8).reshape(shape).copy()
                self.frames_read += 1
                yield frame
        finally:
            decoder.close()
            self._active = None
        if self._closed:
            return
        if failure is not None:
            # a damaged file ends with ffmpeg's exit status 0 (handled below); this is the
            # decoder itself failing, so the frames after this one are unknown
            if not self.frames_read:
                raise VosError(f"Cannot decode video {self.path}: {failure}")
            raise DecoderError(
                f"Cannot decode video {self.path} past frame {self.frames_read - 1} "
                f"({self.frames_read} frames decoded): {failure}"
            )
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
            # stops ffmpeg now, also when another thread is reading from it: that thread then
            # sees the end of the stream and stops quietly because _closed is set
            active.close()
