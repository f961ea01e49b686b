"""Training snippets: fixed-length clips sampled from videos, as the training loop consumes them.

Every dataset here yields dicts::

    {"images": float32 (T,3,H,W) RGB in [0,1], "labels": int64 (T,H,W) 0/1..O/255,
     "num_objects": int O >= 1, "source": str}

with T and (H,W) fixed per dataset, so torch's default collate stacks a batch.

Reproducibility: sample ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)``; its random
numbers come from ``numpy.random.default_rng([seed, e, i])``. DataLoader workers therefore need no
seeding of their own, the order in which workers finish does not matter, and a resumed run
regenerates exactly the snippets it would have seen. Call :meth:`EpochDataset.set_epoch` before
each epoch (persistent workers keep the epoch they were started with; use
``persistent_workers=False``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch.utils.data import Dataset

from vos_cli.data.transforms import (
    IGNORE_LABEL,
    AugmentConfig,
    augment_snippet,
    frames_to_tensor,
    labels_to_tensor,
    resize_snippet,
)
from vos_cli.errors import VosError

Mode = Literal["single", "multi"]
Snippet = dict[str, Any]


@runtime_checkable
class Video(Protocol):
    """What a snippet dataset needs from a video (DavisSequence and YouTubeVOSVideo fit)."""

    def read_frame(self, i: int) -> np.ndarray: ...  # HxWx3 uint8

    def read_annotation(self, i: int) -> np.ndarray: ...  # HxW uint8, 0 bg, 1..N, 255 void

    def num_objects(self) -> int: ...


def video_length(video: Any) -> int:
    """Number of annotated frames: ``len(video)``, else ``len(video.frame_paths)``.

    Training needs a label for every frame, so a video whose ``annotation_paths`` do not match its
    frames one to one (e.g. a DAVIS test sequence with only the first mask) is refused.
    """
    try:
        return len(video)
    except TypeError:
        frames = len(video.frame_paths)
        annotations = len(getattr(video, "annotation_paths", video.frame_paths))
        if annotations != frames:
            name = getattr(video, "name", "?")
            raise VosError(
                f"video {name}: {annotations} annotations for {frames} frames; "
                "training needs every frame annotated"
            ) from None
        return frames


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator that alone decides sample ``index`` of ``epoch`` (see module docstring)."""
    return np.random.default_rng([int(seed) % 2**63, int(epoch) % 2**63, int(index) % 2**63])


def temporal_indices(
    length: int, num_frames: int, rng: np.random.Generator, max_stride: int = 1
) -> np.ndarray:
    """Frame indices of a snippet: a random start and a random stride in [1, max_stride].

    The stride is lowered until the snippet fits. A video shorter than ``num_frames`` is played
    forth and back (0,1,..,L-1,L-2,..), starting at a random point of that cycle: reflecting keeps
    the motion smooth, unlike looping back to frame 0, and unlike repeating a frame it still moves.
    """
    if length <= 0:
        raise VosError("cannot sample a snippet from a video without frames")
    if length == 1:
        return np.zeros(num_frames, dtype=np.int64)
    stride = int(rng.integers(1, max(1, max_stride) + 1))
    stride = min(stride, max(1, (length - 1) // max(1, num_frames - 1)))
    span = (num_frames - 1) * stride + 1
    if span <= length:
        start = int(rng.integers(0, length - span + 1))
        return start + stride * np.arange(num_frames, dtype=np.int64)
    period = 2 * (length - 1)
    steps = (int(rng.integers(0, period)) + np.arange(num_frames)) % period
    return np.where(steps < length, steps, period - steps).astype(np.int64)


def compact_lut(keep_ids: Sequence[int]) -> np.ndarray:
    """Lookup table mapping ``keep_ids`` to 1..len(keep_ids), other ids to 0, 255 to 255."""
    lut = np.zeros(256, dtype=np.uint8)
    lut[IGNORE_LABEL] = IGNORE_LABEL
    for new, old in enumerate(keep_ids, start=1):
        lut[int(old)] = new
    return lut


class EpochDataset(Dataset):
    """Base for datasets whose items are drawn afresh each epoch from ``(seed, epoch, index)``."""

    def __init__(self, samples_per_epoch: int, seed: int) -> None:
        if samples_per_epoch < 1:
            raise VosError(f"samples_per_epoch must be at least 1, got {samples_per_epoch}")
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed = int(seed)
        self.epoch = 0

    def _set_snippet_shape(
        self,
        num_frames: int,
        size: tuple[int, int],
        mode: Mode,
        max_objects: int,
        augment: bool | AugmentConfig,
        name: str,
    ) -> None:
        """Settings every snippet dataset shares (length, size, object sampling, augmentation)."""
        self.num_frames = int(num_frames)
        self.size = (int(size[0]), int(size[1]))
        self.mode: Mode = mode
        self.max_objects = 1 if mode == "single" else int(max_objects)
        if augment is True:
            augment = AugmentConfig()
        self.augment: AugmentConfig | None = augment or None
        self.name = name

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch that ``__getitem__`` draws from."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> Snippet:
        if not 0 <= index < self.samples_per_epoch:
            raise IndexError(index)
        return self.sample(self.epoch, index)

    def sample(self, epoch: int, index: int) -> Snippet:
        """Snippet ``index`` of ``epoch``; depends on nothing else than the seed."""
        raise NotImplementedError


def _finish(labels: torch.Tensor, min_pixels: int) -> tuple[torch.Tensor, int] | None:
    """Drop objects with fewer than ``min_pixels`` in frame 0 and compact the rest to 1..O.

    Returns None when no object is left: a snippet whose first frame has no object gives the
    model nothing to track.
    """
    counts = torch.bincount(labels[0].flatten(), minlength=256)
    present = counts[1:IGNORE_LABEL].ge(min_pixels).nonzero().flatten() + 1
    if present.numel() == 0:
        return None
    num = int(labels[(labels > 0) & (labels != IGNORE_LABEL)].max())
    if present.numel() != num:
        lut = torch.from_numpy(compact_lut(present.tolist()).astype(np.int64))
        labels = lut[labels]
    return labels, int(present.numel())


class VideoSnippetDataset(EpochDataset):
    """Random snippets of ``num_frames`` consecutive (annotated) frames from a list of videos.

    Sampling follows the A-GAME training recipe: per snippet a video (each video once per
    ``len(videos)`` samples, in an order shuffled per epoch), a random start so that the snippet
    fits (shorter videos are reflected, see :func:`temporal_indices`), then either one object at
    random (``mode="single"``: its id becomes 1, every other object background) or a random subset
    of at most ``max_objects`` objects (``mode="multi"``: ids compacted to 1..O in original order).
    Only objects visible in the first frame are candidates; if none is (or the crop loses it),
    the sample is redrawn, up to ``max_retries`` times.
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
        name: str = "videos",
        max_stride: int = 1,
        min_area: float = 0.001,
        max_retries: int = 20,
    ) -> None:
        if not videos:
            raise VosError(f"dataset {name!r} has no videos")
        if mode not in ("single", "multi"):
            raise VosError(f"unknown sampling mode {mode!r} (expected 'single' or 'multi')")
        if num_frames < 1 or max_objects < 1:
            raise VosError("num_frames and max_objects must be at least 1")
        super().__init__(samples_per_epoch or len(videos), seed)
        self.videos = list(videos)
        self._set_snippet_shape(num_frames, size, mode, max_objects, augment, name)
        self.max_stride = int(max_stride)
        self.min_area = float(min_area)
        self.max_retries = int(max_retries)
        self._lengths = [video_length(v) for v in self.videos]
        self._order_epoch: int | None = None
        self._order = np.arange(len(self.videos))

    def _pick_objects(self, annotation: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
        """The lookup table keeping a random choice of the objects big enough in
        ``annotation`` (see ``mode``), or None when there is none."""
        counts = np.bincount(annotation.ravel(), minlength=256)
        min_raw = max(1, int(self.min_area * annotation.size))
        candidates = [i for i in range(1, IGNORE_LABEL) if counts[i] >= min_raw]
        if not candidates:
            return None
        chosen = rng.permutation(candidates)[: self.max_objects]
        return compact_lut(sorted(int(c) for c in chosen))

    def _video_order(self, epoch: int) -> np.ndarray:
        if self._order_epoch != epoch:
            rng = np.random.default_rng([self.seed % 2**63, epoch % 2**63, 2**62])
            self._order = rng.permutation(len(self.videos))
            self._order_epoch = epoch
        return self._order

    def sample(self, epoch: int, index: int) -> Snippet:
        rng = sample_rng(self.seed, epoch, index)
        order = self._video_order(epoch)
        out_pixels = self.size[0] * self.size[1]
        for attempt in range(self.max_retries):
            if attempt == 0:
                vid = int(order[index % len(order)])
            else:
                vid = int(rng.integers(len(self.videos)))
            video = self.videos[vid]
            frames = temporal_indices(self._lengths[vid], self.num_frames, rng, self.max_stride)
            first = np.asarray(video.read_annotation(int(frames[0])), dtype=np.uint8)
            lut = self._pick_objects(first, rng)
            if lut is None:
                continue
            cache = {int(frames[0]): first}
            labels = []
            for f in frames.tolist():
                if f not in cache:
                    cache[f] = np.asarray(video.read_annotation(f), dtype=np.uint8)
                labels.append(lut[cache[f]])
            images = frames_to_tensor([video.read_frame(f) for f in frames.tolist()])
            label_t = labels_to_tensor(labels)
            if tuple(images.shape[-2:]) != tuple(label_t.shape[-2:]):
                raise VosError(
                    f"{self.name}/{getattr(video, 'name', vid)}: frame and annotation sizes differ"
                )
            if self.augment is not None:
                images, label_t = augment_snippet(images, label_t, self.size, rng, self.augment)
            else:
                images, label_t = resize_snippet(images, label_t, self.size)
            label_t = label_t.long()
            finished = _finish(label_t, max(1, int(self.min_area * out_pixels)))
            if finished is None:
                continue
            label_t, num = finished
            return {
                "images": images.contiguous(),
                "labels": label_t.contiguous(),
                "num_objects": num,
                "source": f"{self.name}/{getattr(video, 'name', vid)}",
            }
        raise VosError(
            f"dataset {self.name!r}: no snippet with an object in its first frame after "
            f"{self.max_retries} tries; are the annotations empty?"
        )


class MixedDataset(EpochDataset):
    """Draws each sample from one of several datasets with the given probabilities.

    Which dataset, and that dataset's sample, are decided by ``(seed, epoch, index)`` alone: the
    chosen dataset is asked for ``sample(epoch, index)`` (its own seed decorrelates it), so two
    indices of one epoch never alias the same snippet. ``set_epoch`` reaches the member datasets.
    """

    def __init__(
        self,
        datasets: Sequence[EpochDataset],
        weights: Sequence[float],
        samples_per_epoch: int,
        seed: int = 0,
    ) -> None:
        if not datasets or len(datasets) != len(weights):
            raise VosError("MixedDataset needs one weight per dataset and at least one dataset")
        w = np.asarray(weights, dtype=np.float64)
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise VosError(f"dataset weights must be non-negative and not all zero, got {weights}")
        shapes = {(getattr(d, "num_frames", None), getattr(d, "size", None)) for d in datasets}
        if len(shapes) > 1:
            raise VosError(f"mixed datasets must share snippet length and size, got {shapes}")
        super().__init__(samples_per_epoch, seed)
        self.datasets = list(datasets)
        self.weights = w / w.sum()
        self.num_frames, self.size = next(iter(shapes))

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        for d in self.datasets:
            d.set_epoch(epoch)

    def sample(self, epoch: int, index: int) -> Snippet:
        rng = np.random.default_rng([self.seed % 2**63, epoch % 2**63, index % 2**63, 1])
        which = int(rng.choice(len(self.datasets), p=self.weights))
        return self.datasets[which].sample(epoch, index)
