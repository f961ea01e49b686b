"""Training snippets that paste the objects of one real video over the frames of another.

DAVIS 2016 train holds 24 scenes, each with its one object: sampled as plain snippets, the
network sees every object only ever in front of its own background, and learns the pairs (the
training IoU rises while dev J&F stays flat). Pasting the object layer of a snippet of video A
(its real motion and deformation, frame by frame) over a snippet of video B (its real camera
motion) makes 24 x 23 scenes from the same data. Unlike dreamed snippets
(:mod:`vos_cli.data.dreamed`), nothing is in-painted and no motion is invented; and B's own
object stays in the frame as a background distractor of real appearance and motion.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from vos_cli.data.snippets import (
    EpochDataset,
    Mode,
    Snippet,
    VideoSnippetDataset,
    _finish,
    sample_rng,
)
from vos_cli.data.transforms import IGNORE_LABEL, AugmentConfig
from vos_cli.errors import VosError

_SCENE_SEED = 7919
"""Offset between the seeds of the object and the scene snippets, so that they are drawn
independently (a different video order and different crops)."""


def paste_layer(
    scene: torch.Tensor,
    scene_labels: torch.Tensor,
    layer: torch.Tensor,
    layer_labels: torch.Tensor,
    scale: float,
    offset: tuple[int, int],
    feather: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Composite the objects of ``layer`` over ``scene``, shrunk by ``scale`` at ``offset``.

    ``scene``/``layer`` are (T,3,H,W) float images, ``*_labels`` (T,H,W) int64. The layer's
    objects (labels 1..O, not ignore) become an alpha matte, resized bilinearly with the layer and
    softened by a ``2 * feather + 1`` box filter so the cut has no hard staircase edge; the same
    scale and offset apply to every frame, so the objects keep their own motion. Returns the
    composite and its labels: the layer's ids where the matte is at least 1/2, elsewhere 0 (the
    scene's objects become background) or the scene's ignore label.
    """
    t, _, height, width = scene.shape
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    top, left = offset
    if not (0 <= top <= height - h and 0 <= left <= width - w):
        raise ValueError(f"offset {offset} puts a {h}x{w} layer outside a {height}x{width} frame")
    objects = (layer_labels > 0) & (layer_labels != IGNORE_LABEL)
    alpha = objects[:, None].float()
    if (h, w) != (height, width):
        layer = F.interpolate(layer, size=(h, w), mode="bilinear", align_corners=False)
        alpha = F.interpolate(alpha, size=(h, w), mode="bilinear", align_corners=False)
        ids = F.interpolate(layer_labels[:, None].float(), size=(h, w), mode="nearest-exact")
        layer_labels = ids[:, 0].long()
    if feather > 0:
        size = 2 * feather + 1
        alpha = F.avg_pool2d(alpha, size, stride=1, padding=feather, count_include_pad=False)
    window = (slice(None), slice(None), slice(top, top + h), slice(left, left + w))
    full_alpha = torch.zeros(t, 1, height, width)
    full_alpha[window] = alpha
    full_layer = torch.zeros_like(scene)
    full_layer[window] = layer
    images = full_alpha * full_layer + (1.0 - full_alpha) * scene

    labels = torch.where(scene_labels == IGNORE_LABEL, IGNORE_LABEL, 0)
    ids = torch.zeros(t, height, width, dtype=torch.long)
    ids[:, top : top + h, left : left + w] = layer_labels
    keep = (full_alpha[:, 0] >= 0.5) & (ids > 0) & (ids != IGNORE_LABEL)
    return images.clamp_(0.0, 1.0), torch.where(keep, ids, labels)


class PastedVideosDataset(EpochDataset):
    """Snippets of ``num_frames``: the objects of a snippet of one video pasted over another's.

    Both snippets are drawn, augmented (each its own flip, zoom and colour) and cropped as
    :class:`~vos_cli.data.snippets.VideoSnippetDataset` draws them, the objects' one by ``mode``
    and ``max_objects``, from two different videos. The object layer is shrunk by a factor drawn
    from ``scale_range`` once per snippet and placed at a random position in the frame.
    """

    def __init__(
        self,
        videos: Sequence[Any],
        num_frames: int,
        size: tuple[int, int],
        mode: Mode = "single",
        max_objects: int = 1,
        augment: bool | AugmentConfig = True,
        seed: int = 0,
        samples_per_epoch: int | None = None,
        *,
        name: str = "pasted",
        max_stride: int = 1,
        scale_range: tuple[float, float] = (0.5, 1.0),
        feather: int = 1,
        min_area: float = 0.002,
        max_retries: int = 20,
    ) -> None:
        if len(videos) < 2:
            raise VosError(f"dataset {name!r}: pasting needs at least two videos")
        if not 0.0 < scale_range[0] <= scale_range[1] <= 1.0:
            raise VosError(f"dataset {name!r}: scale_range must lie in (0, 1], got {scale_range}")
        super().__init__(samples_per_epoch or len(videos), seed)
        self._set_snippet_shape(num_frames, size, mode, max_objects, augment, name)
        common: dict[str, Any] = dict(
            num_frames=num_frames,
            size=size,
            augment=augment,
            samples_per_epoch=samples_per_epoch,
            max_stride=max_stride,
            min_area=min_area,
            max_retries=max_retries,
        )
        self.objects = VideoSnippetDataset(
            videos, mode=mode, max_objects=max_objects, seed=seed, name=name, **common
        )
        self.scenes = VideoSnippetDataset(videos, seed=seed + _SCENE_SEED, name=name, **common)
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.feather = int(feather)
        self.min_area = float(min_area)
        self.max_retries = int(max_retries)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.objects.set_epoch(epoch)
        self.scenes.set_epoch(epoch)

    def sample(self, epoch: int, index: int) -> Snippet:
        rng = sample_rng(self.seed, epoch, index)
        height, width = self.size
        min_pixels = max(1, int(self.min_area * height * width))
        for attempt in range(self.max_retries):
            shift = attempt * self.samples_per_epoch
            layer = self.objects.sample(epoch, index + shift)
            scene = None
            for k in range(len(self.scenes.videos)):
                candidate = self.scenes.sample(epoch, index + shift + k)
                if candidate["source"] != layer["source"]:
                    scene = candidate
                    break
            if scene is None:
                continue
            scale = float(rng.uniform(*self.scale_range))
            h, w = max(1, round(height * scale)), max(1, round(width * scale))
            offset = (int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)))
            images, labels = paste_layer(
                scene["images"],
                scene["labels"],
                layer["images"],
                layer["labels"],
                scale,
                offset,
                self.feather,
            )
            finished = _finish(labels, min_pixels)
            if finished is None:
                continue
            labels, num = finished
            return {
                "images": images.contiguous(),
                "labels": labels.contiguous(),
                "num_objects": num,
                "source": f"{layer['source']}+{scene['source'].split('/', 1)[1]}",
            }
        raise VosError(
            f"dataset {self.name!r}: no pasted snippet with a visible object after "
            f"{self.max_retries} tries; are the annotations empty?"
        )
