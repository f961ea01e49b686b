"""SynthVOS: synthetic training videos made by moving cut-out objects over a background image.

Real VOS training data is scarce (DAVIS 2016 train has 30 videos); the A-GAME authors pre-train on
synthetic videos to teach the model to follow arbitrary objects among distractors. A snippet here is
1..``max_pasted`` objects, cut out with their masks from instance-annotated images, pasted onto a
background taken from another image, and moved along smooth random affine paths (translation with
velocity and acceleration, rotation, zoom). The depth order is random per snippet; the labels are
the masks left visible after occlusion, so an occluded part belongs to the object in front. Objects
that are (almost) invisible in frame 0 are removed, because the model is told what to track only
through the first frame. The camera pans slowly over the background.

Object sources are read by :mod:`vos_cli.data.synth_sources`.

Rendering is vectorised over frames with ``grid_sample`` restricted to the window each object
covers, so a snippet costs a few tens of milliseconds on one core. Snippets are a pure function of
``(seed, epoch, index)``, like every :class:`~vos_cli.data.snippets.EpochDataset`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from vos_cli.data.snippets import EpochDataset, Mode, Snippet, sample_rng
from vos_cli.data.synth_sources import ObjectInstance
from vos_cli.data.transforms import AugmentConfig, color_jitter
from vos_cli.errors import VosError


@dataclass(frozen=True)
class MotionConfig:
    """Ranges of the random object paths; per-frame quantities, so longer snippets move further."""

    extent: tuple[float, float] = (0.15, 0.5)
    """Object size (square root of its mask area) relative to sqrt(H*W) of the frame."""
    speed: float = 0.025
    """Maximum speed, as a fraction of the frame diagonal per frame."""
    acceleration: float = 0.002
    """Standard deviation of the acceleration (frame diagonal per frame squared)."""
    initial_rotation: float = 0.3
    """Maximum static rotation of the pasted object, radians."""
    angular_speed: float = 0.03
    """Standard deviation of the rotation speed, radians per frame."""
    zoom_speed: float = 0.025
    """Standard deviation of the log-scale change per frame."""
    camera_speed: float = 0.006
    """Maximum background pan, as a fraction of the frame diagonal per frame."""


class _LRU:
    """A tiny per-process LRU cache (decoded images are reused across snippets)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.data: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any, make: Any) -> Any:
        if key in self.data:
            self.data.move_to_end(key)
            return self.data[key]
        value = make()
        if self.maxsize > 0:
            self.data[key] = value
            if len(self.data) > self.maxsize:
                self.data.popitem(last=False)
        return value


@dataclass
class _Cutout:
    rgb: np.ndarray  # h x w x 3 uint8, the object's bounding box (plus a margin)
    mask: np.ndarray  # h x w uint8 0/255
    area: float  # mask pixels


def _read_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, ValueError) as exc:
        raise VosError(f"cannot read image {path}: {exc}") from None


class SynthVOS(EpochDataset):
    """Synthetic snippets in the training dict format (see :mod:`vos_cli.data.snippets`).

    ``mode="single"``: one of the pasted objects is the target (id 1), the others stay in the
    video as unlabelled distractors. With probability ``twin_prob`` one object is pasted twice,
    a distractor that appearance alone cannot reject (like a second dancer in the same dress).
    ``mode="multi"``: up to ``max_objects`` visible objects get ids 1..O (random order), any
    further ones are distractors. ``augment`` adds colour jitter (geometry is random already).
    """

    def __init__(
        self,
        instances: Sequence[ObjectInstance],
        backgrounds: Sequence[Path],
        num_frames: int,
        size: tuple[int, int],
        mode: Mode = "multi",
        max_objects: int = 5,
        augment: bool | AugmentConfig = True,
        seed: int = 0,
        samples_per_epoch: int = 1000,
        *,
        name: str = "synth",
        max_pasted: int = 5,
        min_pasted: int = 1,
        min_area: float = 0.004,
        motion: MotionConfig = MotionConfig(),
        max_retries: int = 20,
        cache_size: int = 256,
        twin_prob: float = 0.0,
    ) -> None:
        if not instances:
            raise VosError("SynthVOS needs at least one object instance")
        if not backgrounds:
            raise VosError("SynthVOS needs at least one background image")
        if mode not in ("single", "multi"):
            raise VosError(f"unknown sampling mode {mode!r} (expected 'single' or 'multi')")
        if num_frames < 1 or max_objects < 1 or max_pasted < 1:
            raise VosError("num_frames, max_objects and max_pasted must be at least 1")
        if not 1 <= min_pasted <= max_pasted:
            raise VosError("min_pasted must be in [1, max_pasted]")
        if not 0.0 <= twin_prob <= 1.0:
            raise VosError(f"twin_prob must be in [0, 1], got {twin_prob}")
        super().__init__(samples_per_epoch, seed)
        self.twin_prob = float(twin_prob)
        self.instances = list(instances)
        self.backgrounds = [Path(p) for p in backgrounds]
        self._set_snippet_shape(num_frames, size, mode, max_objects, augment, name)
        self.max_pasted = int(max_pasted)
        self.min_pasted = int(min_pasted)
        self.min_area = float(min_area)
        self.motion = motion
        self.max_retries = int(max_retries)
        self.cache_size = int(cache_size)
        self._images = _LRU(self.cache_size)
        self._cutouts = _LRU(4 * self.cache_size)

    def __getstate__(self) -> dict[str, Any]:
        # Worker processes start with empty caches instead of pickling decoded images.
        state = self.__dict__.copy()
        state["_images"] = _LRU(self.cache_size)
        state["_cutouts"] = _LRU(4 * self.cache_size)
        return state

    # -- sources ---------------------------------------------------------------------------

    def _image(self, path: Path) -> Image.Image:
        return self._images.get(path, lambda: _read_rgb(path))

    def _cutout(self, k: int) -> _Cutout | None:
        return self._cutouts.get(k, lambda: self._make_cutout(self.instances[k]))

    def _make_cutout(self, inst: ObjectInstance) -> _Cutout | None:
        """Crop the object's box (2 px margin) from its image with the mask rasterised in it."""
        image = self._image(inst.image_path)
        w, h = image.size
        if inst.polygon is not None:
            xy = np.asarray(inst.polygon, dtype=np.float64).reshape(-1, 2) * (w, h) - 0.5
            x0, y0 = np.floor(xy.min(0)).astype(int) - 2
            x1, y1 = np.ceil(xy.max(0)).astype(int) + 3
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
            if x1 - x0 < 2 or y1 - y0 < 2:
                return None
            canvas = Image.new("L", (x1 - x0, y1 - y0), 0)
            ImageDraw.Draw(canvas).polygon([(x - x0, y - y0) for x, y in xy], fill=255)
            mask = np.asarray(canvas)
        else:
            assert inst.mask_path is not None
            try:
                with Image.open(inst.mask_path) as m:
                    if inst.mask_id is not None:
                        full = np.asarray(m) == inst.mask_id
                    else:
                        full = np.asarray(m.convert("L")) > 127
            except (OSError, ValueError) as exc:
                raise VosError(f"cannot read mask {inst.mask_path}: {exc}") from None
            if full.shape != (h, w):
                raise VosError(f"{inst.mask_path}: mask size differs from {inst.image_path}")
            rows, cols = np.nonzero(full.any(1))[0], np.nonzero(full.any(0))[0]
            if rows.size == 0:
                return None
            y0, y1 = max(int(rows[0]) - 2, 0), min(int(rows[-1]) + 3, h)
            x0, x1 = max(int(cols[0]) - 2, 0), min(int(cols[-1]) + 3, w)
            mask = full[y0:y1, x0:x1].astype(np.uint8) * 255
        area = float(np.count_nonzero(mask))
        if area < 16:
            return None
        rgb = np.asarray(image.crop((int(x0), int(y0), int(x1), int(y1))))
        return _Cutout(rgb, mask, area)

    def _background(self, path: Path, rng: np.random.Generator) -> torch.Tensor:
        """(T,3,H,W) crops of a zoomed background along a slow linear-plus-curve camera pan."""
        height, width = self.size
        t = self.num_frames
        diag = float(np.hypot(height, width))
        speed = rng.uniform(0, self.motion.camera_speed) * diag
        angle = rng.uniform(0, 2 * np.pi)
        steps = np.arange(t)
        path_x = speed * np.cos(angle) * steps
        path_y = speed * np.sin(angle) * steps
        span_x = int(np.ceil(np.ptp(path_x))) + 1
        span_y = int(np.ceil(np.ptp(path_y))) + 1

        image = self._image(path)
        w0, h0 = image.size
        zoom = rng.uniform(1.0, 1.4)
        scale = max((width + span_x) / w0, (height + span_y) / h0) * zoom
        w1, h1 = max(width + span_x, round(w0 * scale)), max(height + span_y, round(h0 * scale))
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        resized = np.asarray(image.resize((w1, h1), Image.Resampling.BILINEAR))
        x0 = int(rng.integers(0, w1 - width - span_x + 2))
        y0 = int(rng.integers(0, h1 - height - span_y + 2))
        xs = np.clip(np.round(x0 + path_x - path_x.min()).astype(int), 0, w1 - width)
        ys = np.clip(np.round(y0 + path_y - path_y.min()).astype(int), 0, h1 - height)
        frames = np.stack(
            [resized[y : y + height, x : x + width] for x, y in zip(xs, ys, strict=True)]
        )
        images = torch.from_numpy(frames).permute(0, 3, 1, 2)
        return images.to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)

    # -- objects ---------------------------------------------------------------------------

    def _render(
        self, cut: _Cutout, rng: np.random.Generator
    ) -> tuple[torch.Tensor, int, int] | None:
        """Render an object along a random path: (T,4,h,w) RGBA over the window it covers.

        Returns the window's tensor and its top-left (y, x) in the frame, or None when the object
        never enters the frame.
        """
        height, width = self.size
        t = self.num_frames
        m = self.motion
        diag = float(np.hypot(height, width))
        steps = np.arange(t, dtype=np.float64)

        extent = rng.uniform(*m.extent) * np.sqrt(height * width)
        scale = extent / np.sqrt(cut.area) * np.exp(rng.normal(0, m.zoom_speed) * steps)
        theta = (
            rng.uniform(-m.initial_rotation, m.initial_rotation)
            + rng.normal(0, m.angular_speed) * steps
        )
        speed = rng.uniform(0, m.speed) * diag
        heading = rng.uniform(0, 2 * np.pi)
        acc = rng.normal(0, m.acceleration * diag, size=2)
        cx = (
            rng.uniform(0.1, 0.9) * width
            + speed * np.cos(heading) * steps
            + 0.5 * acc[0] * steps**2
        )
        cy = (
            rng.uniform(0.1, 0.9) * height
            + speed * np.sin(heading) * steps
            + 0.5 * acc[1] * steps**2
        )

        rgb, mask = cut.rgb, cut.mask
        if rng.random() < 0.5:
            rgb, mask = rgb[:, ::-1], mask[:, ::-1]
        # Shrink the cut-out beforehand (antialiased) so grid_sample never minifies much.
        pre = min(1.0, float(scale.max()))
        h, w = mask.shape
        if pre < 1.0:
            w, h = max(2, round(w * pre)), max(2, round(h * pre))
            rgb = np.asarray(
                Image.fromarray(np.ascontiguousarray(rgb)).resize((w, h), Image.Resampling.BILINEAR)
            )
            mask = np.asarray(
                Image.fromarray(np.ascontiguousarray(mask)).resize(
                    (w, h), Image.Resampling.BILINEAR
                )
            )
        rel = scale / pre  # frame pixels per (resized) cut-out pixel
        rgba = np.concatenate([rgb, mask[..., None]], axis=-1)
        source = torch.from_numpy(np.ascontiguousarray(rgba)).permute(2, 0, 1).float().div_(255.0)

        # Window: union over frames of the rotated, scaled box, clipped to the frame.
        cos, sin = np.cos(theta), np.sin(theta)
        hw, hh = w / 2 * rel, h / 2 * rel
        half_x = np.abs(cos) * hw + np.abs(sin) * hh
        half_y = np.abs(sin) * hw + np.abs(cos) * hh
        x0 = max(0, int(np.floor((cx - half_x).min())) - 1)
        x1 = min(width, int(np.ceil((cx + half_x).max())) + 2)
        y0 = max(0, int(np.floor((cy - half_y).min())) - 1)
        y1 = min(height, int(np.ceil((cy + half_y).max())) + 2)
        if x1 <= x0 or y1 <= y0:
            return None

        # Frame pixel p -> cut-out pixel q = R(-theta) (p - c) / rel + centre, then to the
        # [-1, 1] coordinates of grid_sample (align_corners=False).
        def col(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a.astype(np.float32)).view(t, 1, 1)

        px = torch.arange(x0, x1, dtype=torch.float32).view(1, 1, -1) - col(cx)
        py = torch.arange(y0, y1, dtype=torch.float32).view(1, -1, 1) - col(cy)
        a, b = col(cos / rel), col(sin / rel)
        qx = (a * px + b * py) * (2.0 / w)
        qy = (a * py - b * px) * (2.0 / h)
        grid = torch.stack(torch.broadcast_tensors(qx, qy), dim=-1)
        window = F.grid_sample(
            source.unsqueeze(0).expand(t, -1, -1, -1),
            grid,
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        )
        return window, y0, x0

    @staticmethod
    def _compose(
        background: torch.Tensor,
        layers: Sequence[tuple[torch.Tensor, int, int]],
        ids: Sequence[int],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Alpha-blend ``layers`` back to front into ``background`` (in place).

        A pixel is labelled by its front-most object.
        """
        images = background
        labels = torch.zeros(background.shape[0], *background.shape[-2:], dtype=torch.uint8)
        for (window, y0, x0), obj_id in zip(layers, ids, strict=True):
            h, w = window.shape[-2:]
            alpha = window[:, 3:4]
            images[:, :, y0 : y0 + h, x0 : x0 + w].lerp_(window[:, :3], alpha)
            labels[:, y0 : y0 + h, x0 : x0 + w][alpha[:, 0] >= 0.5] = obj_id
        return images, labels

    def _first_frame_areas(self, layers: Sequence[tuple[torch.Tensor, int, int]]) -> torch.Tensor:
        """Visible pixels of each layer in frame 0 after occlusion (layers back to front)."""
        labels = torch.zeros(self.size, dtype=torch.uint8)
        for obj_id, (window, y0, x0) in enumerate(layers, 1):
            h, w = window.shape[-2:]
            labels[y0 : y0 + h, x0 : x0 + w][window[0, 3] >= 0.5] = obj_id
        return torch.bincount(labels.flatten().long(), minlength=len(layers) + 1)[1:]

    def sample(self, epoch: int, index: int) -> Snippet:
        rng = sample_rng(self.seed, epoch, index)
        min_pixels = max(1, int(self.min_area * self.size[0] * self.size[1]))
        for _ in range(self.max_retries):
            count = int(rng.integers(self.min_pasted, self.max_pasted + 1))
            picks = rng.integers(len(self.instances), size=count)
            if rng.random() < self.twin_prob:
                # A second copy of one object on its own path: only where it was in frame 0
                # tells the two apart, which is what the mask propagation has to learn.
                picks = np.append(picks, picks[0])
            cutouts = [(k, self._cutout(int(k))) for k in picks]
            cutouts = [(k, c) for k, c in cutouts if c is not None]
            if not cutouts:
                continue
            own = {self.instances[int(k)].image_path for k, _ in cutouts}
            others = [p for p in self.backgrounds if p not in own] or self.backgrounds
            background = self._background(others[int(rng.integers(len(others)))], rng)
            layers = [r for _, c in cutouts if (r := self._render(c, rng)) is not None]
            if not layers:
                continue
            order = rng.permutation(len(layers))  # back to front
            layers = [layers[i] for i in order]
            # Drop objects (nearly) invisible in frame 0; removing one only uncovers the others.
            areas = self._first_frame_areas(layers)
            layers = [lay for lay, area in zip(layers, areas, strict=True) if area >= min_pixels]
            if not layers:
                continue
            num = min(self.max_objects, len(layers))
            targets = rng.permutation(len(layers))[:num]
            ids = [0] * len(layers)
            for new_id, i in enumerate(targets, 1):
                ids[int(i)] = new_id
            images, labels = self._compose(background, layers, ids)
            if self.augment is not None:
                images = color_jitter(images, rng, self.augment)
            return {
                "images": images.contiguous(),
                "labels": labels.long(),
                "num_objects": num,
                "source": f"{self.name}/{epoch}-{index}",
            }
        raise VosError(
            f"dataset {self.name!r}: could not compose a snippet with a visible object in "
            f"{self.max_retries} tries; are the object masks empty?"
        )
