"""The frame rate to write outputs at: the rate at which ffmpeg hands us the input's frames.

Two things make the header's rate the wrong one. ffmpeg prints rates rounded to two decimals
(``23.98`` for 24000/1001: 0.02% off, a frame every 3.5 minutes). And it decodes a
variable-frame-rate video into the pipe at a constant rate (repeating or dropping frames to fill
the gaps), which is its nominal rate, not the average the header reports: written at the
average, the outputs would run long and drift from the input. So the rate is asked of ffmpeg's
own pipe output, and rounded rates are read as the NTSC fractions they stand for.
"""

from __future__ import annotations

import os
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg

from vos_cli.io.video import FrameSource

__all__ = ["decoded_rate", "exact_rate", "output_rate"]

_NTSC_BASES = (24, 30, 48, 60, 120, 240)
_OUTPUT_RATE = re.compile(r"Output #0.*?Stream #0:0.*? (\d+(?:\.\d+)?)(k?) fps", re.DOTALL)


def exact_rate(fps: float) -> Fraction:
    """``fps`` as a fraction; 23.98, 29.97, 59.94 ... (as ffmpeg prints them) as N*1000/1001."""
    for base in _NTSC_BASES:
        ntsc = Fraction(base * 1000, 1001)
        if abs(fps - float(ntsc)) < 0.006:
            return ntsc
    return Fraction(fps).limit_denominator(1001)


def decoded_rate(path: Path, timeout: float = 30.0) -> Fraction | None:
    """The rate of the frames ffmpeg's raw pipe output gives for ``path`` (None if unknown).

    Decodes one frame with the options :class:`~vos_cli.io.video.VideoFileSource` uses and
    reads the output stream's rate from ffmpeg's log.
    """
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin"]
    cmd += ["-i", os.path.abspath(path), "-frames:v", "1"]
    cmd += ["-pix_fmt", "rgb24", "-vcodec", "rawvideo", "-f", "image2pipe", "-"]
    try:
        log = subprocess.run(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout, check=False
        ).stderr.decode(errors="replace")
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _OUTPUT_RATE.search(log)
    if match is None:
        return None
    fps = float(match.group(1)) * (1000 if match.group(2) else 1)
    return exact_rate(fps) if fps > 0 else None


def output_rate(source: FrameSource) -> Fraction:
    """The rate of ``source``'s frames as they are decoded: what every output is written at."""
    if not source.path.is_dir():
        rate = decoded_rate(source.path)
        if rate is not None:
            return rate
    return exact_rate(source.fps)
