"""Training snippets dreamed from single annotated frames of real videos.

A video dataset with every frame annotated holds far more object/background pairs than it holds
motions: DAVIS 2016 train has 24 videos but about 1,700 annotated frames. Sampled as video
snippets, consecutive frames look almost alike, so the network sees 24 scenes and overfits them
(the training IoU rises while dev J&F stays flat). Dreaming a snippet from one random frame
(:class:`~vos_cli.data.dreaming.FirstFrameDreamer`: the object cut out, the hole filled, object
and background moved, bent and re-lit independently) gives every annotated frame its own
synthetic motion, with the real scene's look, the real object's shape and its real surroundings.

Measured so far (model card): as a fifth of the training mix from scratch (`lite0-cpu-dreamed`)
it lowered dev J&F at every validation, and as a second stage it did not raise it, so no shipped
config uses it; it stays as a data source for experiments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from vos_cli.data.dreaming import DreamMotion, FirstFrameDreamer
from vos_cli.data.snippets import Mode, Snippet, VideoSnippetDataset, _finish, sample_rng
from vos_cli.data.transforms import (
    AugmentConfig,
    augment_snippet,
    frames_to_tensor,
    labels_to_tensor,
    resize_snippet,
)
from vos_cli.errors import VosError

TRAINING_MOTION = DreamMotion(elastic=0.04)
"""Paths for training snippets. The bending (``elastic``) is what made dreamed snippets useful
for first-frame adaptation (dev J&F 0.572 without it, 0.614 at 0.2 over 6 frames); over 8 frames
0.15 shredded large objects into strands, 0.04 bends them and keeps them recognisable."""


class DreamedFramesDataset(VideoSnippetDataset):
    """Snippets of ``num_frames`` dreamed from one random annotated frame of a random video.

    Videos and objects are chosen as :class:`~vos_cli.data.snippets.VideoSnippetDataset` does
    (each video once per ``len(videos)`` samples, in an order shuffled per epoch; ``mode``,
    ``max_objects``); within the video the frame is uniform. The frame is flipped, zoomed and
    cropped to ``size`` first (the geometry of ``augment``), then dreamed into motion with the
    colour part of ``augment``.
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
        name: str = "dreamed",
        motion: DreamMotion = TRAINING_MOTION,
        min_area: float = 0.002,
        max_retries: int = 20,
    ) -> None:
        if num_frames < 2:
            raise VosError("a dreamed snippet needs num_frames >= 2")
        super().__init__(
            videos,
            num_frames,
            size,
            mode,
            max_objects,
            augment,
            seed,
            samples_per_epoch,
            name=name,
            min_area=min_area,
            max_retries=max_retries,
        )
        self.motion = motion

    def sample(self, epoch: int, index: int) -> Snippet:
        rng = sample_rng(self.seed, epoch, index)
        order = self._video_order(epoch)
        min_pixels = max(1, int(self.min_area * self.size[0] * self.size[1]))
        geometry = colour = None
        if self.augment is not None:
            # The crop takes the augmentation's geometry; the dreamer its colour and flicker.
            geometry = replace(
                self.augment, brightness=0.0, contrast=0.0, saturation=0.0, frame_brightness=0.0
            )
            colour = replace(self.augment, frame_jitter=0.0)
        for attempt in range(self.max_retries):
            vid = int(order[index % len(order)]) if attempt == 0 else int(rng.integers(len(order)))
            video = self.videos[vid]
            frame = int(rng.integers(self._lengths[vid]))
            annotation = np.asarray(video.read_annotation(frame), dtype=np.uint8)
            lut = self._pick_objects(annotation, rng)
            if lut is None:
                continue
            images = frames_to_tensor([video.read_frame(frame)])
            labels = labels_to_tensor([lut[annotation]])
            if tuple(images.shape[-2:]) != tuple(labels.shape[-2:]):
                raise VosError(
                    f"{self.name}/{getattr(video, 'name', vid)}: frame and annotation sizes differ"
                )
            if geometry is not None:
                images, labels = augment_snippet(images, labels, self.size, rng, geometry)
            else:
                images, labels = resize_snippet(images, labels, self.size)
            cropped = _finish(labels.long(), min_pixels)
            if cropped is None:
                continue
            dreamer = FirstFrameDreamer(
                images[0].float(), cropped[0][0], self.num_frames, self.motion, augment=colour
            )
            dreamed_images, dreamed_labels = dreamer.sample(rng)
            finished = _finish(dreamed_labels, min_pixels)
            if finished is None:
                continue
            label_t, num = finished
            return {
                "images": dreamed_images.contiguous(),
                "labels": label_t.contiguous(),
                "num_objects": num,
                "source": f"{self.name}/{getattr(video, 'name', vid)}/{frame}",
            }
        raise VosError(
            f"dataset {self.name!r}: no frame with a visible object after {self.max_retries} "
            "tries; are the annotations empty?"
        )
