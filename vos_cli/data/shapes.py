"""Generated moving-shape videos: training data that needs no files.

Used by the ``smoke`` config and the tests (an install check must not depend on any data set).
Each snippet is a smooth noise background with 1-3 coloured ellipses and rectangles drifting over
it; sample i of epoch e is a pure function of (seed, e, i).
"""

from __future__ import annotations

import numpy as np
import torch

from vos_cli.data.snippets import EpochDataset, Snippet, sample_rng


def _background(rng: np.random.Generator, height: int, width: int) -> torch.Tensor:
    coarse = torch.from_numpy(rng.random((1, 3, 6, 8), dtype=np.float32))
    smooth = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic")
    return smooth[0].clamp(0, 1) * 0.8 + 0.1


class MovingShapes(EpochDataset):
    """Snippets of coloured shapes moving on a smooth background (same dict format as others)."""

    def __init__(
        self,
        num_frames: int,
        size: tuple[int, int],
        mode: str = "single",
        max_objects: int = 3,
        seed: int = 0,
        samples_per_epoch: int = 64,
    ) -> None:
        super().__init__(samples_per_epoch, seed)
        self.num_frames = int(num_frames)
        self.size = (int(size[0]), int(size[1]))
        self.mode = mode
        self.max_objects = 1 if mode == "single" else int(max_objects)

    def sample(self, epoch: int, index: int) -> Snippet:
        rng = sample_rng(self.seed, epoch, index)
        height, width = self.size
        count = int(rng.integers(1, 4))
        background = _background(rng, height, width)
        yy, xx = torch.meshgrid(
            torch.arange(height, dtype=torch.float32),
            torch.arange(width, dtype=torch.float32),
            indexing="ij",
        )
        centres = rng.uniform(
            [0.25 * height, 0.25 * width], [0.75 * height, 0.75 * width], (count, 2)
        )
        velocity = rng.uniform(-0.03, 0.03, (count, 2)) * np.array([height, width])
        radii = rng.uniform(0.1, 0.25, (count, 2)) * np.array([height, width])
        colours = rng.random((count, 3)).astype(np.float32)
        is_box = rng.random(count) < 0.5
        images = torch.empty(self.num_frames, 3, height, width)
        labels = torch.zeros(self.num_frames, height, width, dtype=torch.int64)
        for t in range(self.num_frames):
            frame = background.clone()
            label = torch.zeros(height, width, dtype=torch.int64)
            for k in range(count):
                cy, cx = centres[k] + velocity[k] * t
                ry, rx = radii[k]
                dy, dx = (yy - cy) / ry, (xx - cx) / rx
                inside = (dy.abs() <= 1) & (dx.abs() <= 1) if is_box[k] else dy**2 + dx**2 <= 1
                frame[:, inside] = torch.from_numpy(colours[k])[:, None]
                label[inside] = k + 1
            images[t] = frame
            labels[t] = label
        if self.mode == "single":
            visible = [k for k in range(1, count + 1) if bool((labels[0] == k).any())]
            target = visible[int(rng.integers(len(visible)))]
            labels = (labels == target).long()
            num_objects = 1
        else:
            num_objects = min(count, self.max_objects)
            labels = torch.where(labels > num_objects, torch.zeros_like(labels), labels)
        return {
            "images": images,
            "labels": labels,
            "num_objects": num_objects,
            "source": f"shapes/{index}",
        }
