"""Matte: a grayscale H.264 video, white where the chosen objects are, for an editor's track matte.

It is the cut-out's alpha as a picture (the same :class:`~vos_cli.io.alpha.ObjectAlpha`), so the
two agree frame by frame. yuv420p with neutral chroma plays and imports everywhere; its luma is
video range (16-235), which decoders and editors map back to black 0 and white 255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vos_cli.errors import VosError
from vos_cli.io.alpha import ObjectAlpha
from vos_cli.io.encoder import Encoding, FfmpegWriter
from vos_cli.io.overlay import OVERLAY_SUFFIXES, h264_params

__all__ = ["MATTE_SUFFIXES", "MatteWriter", "check_matte_path"]

#: Containers the H.264 matte can go into.
MATTE_SUFFIXES: frozenset[str] = OVERLAY_SUFFIXES


def check_matte_path(path: Path) -> None:
    """VosError unless ``path`` ends with a container for H.264."""
    if Path(path).suffix.lower() not in MATTE_SUFFIXES:
        allowed = ", ".join(sorted(MATTE_SUFFIXES))
        raise VosError(f"Matte file must end with one of {allowed}: {path}")


class MatteWriter(FfmpegWriter):
    """Write a matte frame by frame: ``with MatteWriter(...) as w: w.write(frame, labels)``.

    ``MatteWriter(path, fps, width, height, alpha, *, crf=16, preset="veryfast", maxsize=4)``.

    Same size and frame rate as the input; an odd width or height is padded by one pixel, as
    yuv420p needs (see :class:`~vos_cli.io.encoder.FfmpegWriter`).
    """

    what = "matte"

    def _setup(
        self, path: Path, alpha: ObjectAlpha, *, crf: int = 16, preset: str = "veryfast"
    ) -> Encoding:
        check_matte_path(path)
        self.alpha = alpha
        params = h264_params(path, crf, preset)
        return Encoding("libx264", pix_fmt_in="gray", output_params=params, even_size=True)

    def _render(self, frame: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return self.alpha(labels)
