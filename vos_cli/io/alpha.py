"""The alpha of a cut-out and a matte: the chosen objects of a label map, edges optionally soft.

One function of the label map shared by the cut-out and the matte, so the two always agree: 255
where a chosen object is, 0 elsewhere, and with ``feather`` a linear ramp across the edges.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from vos_cli.io.masks import VOID_ID

__all__ = ["ObjectAlpha", "box_blur"]


class ObjectAlpha:
    """Label map -> HxW ``uint8`` alpha of the objects ``ids`` (all objects when ``None``).

    ``feather`` PX > 0 box-blurs the alpha with a (2 PX + 1)-pixel square, so every edge ramps
    linearly from 0 to 255 over 2 PX + 1 pixels centred on the mask's edge; 0 keeps the masks
    exactly. Void (255) is never an object.
    """

    def __init__(self, ids: Iterable[int] | None = None, feather: int = 0) -> None:
        if feather < 0:
            raise ValueError(f"feather must be >= 0, got {feather}")
        self.lut = np.zeros(256, dtype=np.uint8)
        if ids is None:
            self.lut[1:VOID_ID] = 255
        else:
            for i in ids:
                if not 0 < i < VOID_ID:
                    raise ValueError(f"object ids are 1..254, got {i}")
                self.lut[i] = 255
        self.feather = int(feather)

    def __call__(self, labels: np.ndarray) -> np.ndarray:
        alpha = self.lut[np.asarray(labels, dtype=np.uint8)]
        if self.feather == 0:
            return alpha
        return box_blur(alpha, self.feather)


def box_blur(image: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2 radius + 1)^2 square (edges repeated outward) of a 2-D ``uint8`` image.

    Separable running sums: cost does not grow with the radius.
    """
    size = 2 * radius + 1
    out = np.pad(image.astype(np.float32), radius, mode="edge")
    for axis in (0, 1):
        csum = np.cumsum(out, axis=axis, dtype=np.float64)
        csum = np.insert(csum, 0, 0.0, axis=axis)
        n = csum.shape[axis]
        hi = np.take(csum, np.arange(size, n), axis=axis)
        lo = np.take(csum, np.arange(0, n - size), axis=axis)
        out = (hi - lo) / size
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
