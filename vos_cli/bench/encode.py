"""H.264 encoding of a clip into an mp4 file, one frame at a time (benchmark inputs)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from vos_cli.errors import VosError


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
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p" if even else "yuv444p",
        quality=None,
        macro_block_size=1,
        ffmpeg_log_level="error",
        output_params=["-preset", "veryfast", "-crf", "20"],
    )
    try:
        writer.send(None)
        for frame in itertools.chain([first], stream):
            if frame.shape[:2] != (height, width):
                raise VosError(
                    f"frame of {frame.shape[1]}x{frame.shape[0]} in a {width}x{height} clip"
                )
            writer.send(np.ascontiguousarray(frame))
    except (OSError, RuntimeError) as exc:
        raise VosError(f"Cannot encode the test clip {path}: {exc}") from None
    finally:
        writer.close()
    return path
