"""H.264 encoding of a clip into an mp4 file, one frame at a time (benchmark inputs)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from vos_cli.errors import VosError, WriteError
from vos_cli.io.ffmpeg import FfmpegEncoder


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
    encoder = FfmpegEncoder(
        str(path),
        (width, height),
        Fraction(fps).limit_denominator(),
        "libx264",
        "rgb24",
        "yuv420p" if even else "yuv444p",
        ["-preset", "veryfast", "-crf", "20"],
    )
    failure: str | None = None
    try:
        for frame in itertools.chain([first], stream):
            if frame.shape[:2] != (height, width):
                raise VosError(
                    f"frame of {frame.shape[1]}x{frame.shape[0]} in a {width}x{height} clip"
                )
            encoder.write(frame)
    except OSError as exc:  # ffmpeg is gone; its exit status says why
        failure = exc.strerror or str(exc)
    finally:
        failure = encoder.finish() or failure
    if failure is not None:
        raise WriteError(f"Cannot encode the test clip {path}: {failure}")
    return path
