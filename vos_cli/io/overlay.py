"""Overlay video: the input frames with translucent, outlined object masks, as H.264.

Rendering (vectorised numpy) and encoding run in a background thread so they overlap with the
network; the file is written atomically and stays valid when the run stops early (the machinery
of :class:`~vos_cli.io.encoder.FfmpegWriter`, shared with the cut-out and the matte).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vos_cli.errors import VosError
from vos_cli.io.encoder import Encoding, FfmpegWriter
from vos_cli.io.masks import DAVIS_PALETTE, VOID_ID

__all__ = ["OVERLAY_SUFFIXES", "OverlayWriter", "h264_params", "render_overlay"]

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


class OverlayWriter(FfmpegWriter):
    """Write an overlay video frame by frame: ``with OverlayWriter(...) as w: w.write(f, m)``.

    ``OverlayWriter(path, fps, width, height, *, alpha=0.5, outline_px=2, crf=20,
    preset="veryfast", maxsize=4)``: ``alpha`` and ``outline_px`` as in :func:`render_overlay`,
    ``crf`` and ``preset`` libx264's.

    Output: H.264 (libx264, yuv420p), same fps and size as the input. yuv420p needs even
    dimensions; an odd width or height is padded by one pixel (a copy of the last column /
    row) on the right / bottom, so such videos come out one pixel larger; even sizes are
    kept exactly. Atomic and valid when stopped early, as every :class:`FfmpegWriter`.
    """

    what = "overlay"

    def _setup(
        self,
        path: Path,
        *,
        alpha: float = 0.5,
        outline_px: int = 2,
        crf: int = 20,
        preset: str = "veryfast",
    ) -> Encoding:
        if path.suffix.lower() not in OVERLAY_SUFFIXES:
            allowed = ", ".join(sorted(OVERLAY_SUFFIXES))
            raise VosError(f"Overlay file must end with one of {allowed}: {path}")
        self.alpha = alpha
        self.outline_px = outline_px
        return Encoding("libx264", output_params=h264_params(path, crf, preset), even_size=True)

    def _render(self, frame: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return render_overlay(frame, labels, self.alpha, self.outline_px)


def h264_params(path: Path, crf: int, preset: str) -> tuple[str, ...]:
    """libx264 at constant quality; MP4-family files get their index first (plays while loading)."""
    params = ["-preset", preset, "-crf", str(int(crf))]
    if path.suffix.lower() in (".mp4", ".m4v", ".mov"):
        params += ["-movflags", "+faststart"]
    return tuple(params)
