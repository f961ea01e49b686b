"""Generated test clips: ellipses drifting over a smooth background, and their first masks.

Needs no files, so the speed and memory benchmarks run anywhere; content does not change the
network's speed, only the frame size and object count do.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from vos_cli.errors import VosError


def _ellipse(height: int, width: int, cy: float, cx: float, ry: float, rx: float) -> tuple:
    """Pixels of an axis-aligned ellipse, computed inside its bounding box only."""
    y0, y1 = max(int(cy - ry), 0), min(int(cy + ry) + 1, height)
    x0, x1 = max(int(cx - rx), 0), min(int(cx + rx) + 1, width)
    if y0 >= y1 or x0 >= x1:
        return (slice(0, 0), slice(0, 0)), np.zeros((0, 0), dtype=bool)
    yy = (np.arange(y0, y1, dtype=np.float32)[:, None] - cy) / ry
    xx = (np.arange(x0, x1, dtype=np.float32)[None, :] - cx) / rx
    return (slice(y0, y1), slice(x0, x1)), yy**2 + xx**2 <= 1.0


@dataclass(frozen=True)
class _Scene:
    """What a generated clip is drawn from; each frame is a pure function of it and the index."""

    height: int
    width: int
    background: np.ndarray
    centres: np.ndarray
    radii: np.ndarray
    velocity: np.ndarray
    colours: np.ndarray

    def draw(self, t: int, mask: np.ndarray | None = None) -> np.ndarray:
        """Frame ``t``; with ``mask``, also paint object ``k``'s pixels there as id ``k + 1``."""
        frame = self.background.copy()
        for k in range(len(self.centres)):
            cy, cx = self.centres[k] + self.velocity[k] * t
            where, inside = _ellipse(self.height, self.width, cy, cx, *self.radii[k])
            frame[where][inside] = self.colours[k]
            if mask is not None:
                mask[where][inside] = k + 1
        return frame


def _scene(height: int, width: int, num_objects: int, seed: int) -> _Scene:
    if height < 16 or width < 16:
        raise VosError(f"a generated clip needs frames of at least 16x16, got {width}x{height}")
    rng = np.random.default_rng(seed)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    tint = rng.uniform(0.2, 0.8, (2, 3)).astype(np.float32)
    background = (40 + 160 * (ys * tint[0] + xs * tint[1]) / 2).astype(np.uint8)
    # spread the objects over the frame so each is visible in frame 0
    cols = int(np.ceil(np.sqrt(num_objects)))
    rows = int(np.ceil(num_objects / cols))
    centres = np.array(
        [
            ((k // cols + 0.5) * height / rows, (k % cols + 0.5) * width / cols)
            for k in range(num_objects)
        ]
    )
    radii = np.stack(
        [np.full(num_objects, 0.35 * height / rows), np.full(num_objects, 0.35 * width / cols)], 1
    )
    velocity = rng.uniform(-0.004, 0.004, (num_objects, 2)) * np.array([height, width])
    colours = rng.integers(0, 256, (num_objects, 3), dtype=np.uint8)
    return _Scene(
        height=height,
        width=width,
        background=np.broadcast_to(background, (height, width, 3)),
        centres=centres,
        radii=radii,
        velocity=velocity,
        colours=colours,
    )


def iter_clip(
    num_frames: int, height: int, width: int, num_objects: int, seed: int = 0
) -> Iterator[np.ndarray]:
    """The frames of :func:`generate_clip` one at a time, so a clip of any length needs the
    memory of one frame (a 10,000-frame 854x480 list would be 12 GB). Arguments are checked
    here, not at the first ``next``."""
    if num_frames < 1:
        raise VosError(f"a generated clip needs at least 1 frame, got {num_frames}")
    scene = _scene(height, width, num_objects, seed)
    return (scene.draw(t) for t in range(num_frames))


def first_frame_mask(height: int, width: int, num_objects: int, seed: int = 0) -> np.ndarray:
    """Frame 0's label map of the clip :func:`iter_clip` generates with the same arguments."""
    mask = np.zeros((height, width), dtype=np.uint8)
    _scene(height, width, num_objects, seed).draw(0, mask)
    return mask


def generate_clip(
    num_frames: int, height: int, width: int, num_objects: int, seed: int = 0
) -> tuple[list[np.ndarray], np.ndarray]:
    """A deterministic clip of ellipses drifting over a smooth background, and frame 0's mask.

    Needs no files, so ``vos bench speed`` runs anywhere; content does not change the speed of
    the network, only the frame size and object count do. Object ``k`` is id ``k``. Holds every
    frame: for long clips use :func:`iter_clip` and :func:`first_frame_mask`.
    """
    frames = list(iter_clip(num_frames, height, width, num_objects, seed))
    return frames, first_frame_mask(height, width, num_objects, seed)


def synthetic_mask(height: int, width: int, num_objects: int) -> np.ndarray:
    """First-frame mask of ``num_objects`` ellipses in a grid, for a user clip without masks."""
    return first_frame_mask(height, width, num_objects)
