"""What every frame source is: a stream of RGB frames with a size, a rate and a length hint."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vos_cli.io.closing import Closing

#: Image suffixes (case-insensitive) picked up from a frame folder; everything else is ignored.
FRAME_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png"})

#: A folder of frames has no frame rate; DAVIS sequences were shot at 24 fps.
DEFAULT_FOLDER_FPS: float = 24.0


class TruncatedVideoWarning(UserWarning):
    """A video ended before its header said it would (file cut short or damaged).

    The message is a single line, meant to be shown to the user as-is.
    """


class FrameSource(Closing, ABC):
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
