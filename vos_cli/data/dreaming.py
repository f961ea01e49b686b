"""Training snippets dreamed from one annotated frame, for adapting the network to a video.

The only ground truth a semi-supervised video gives is its first mask. Following the idea of
"lucid data dreaming" (Khoreva et al., IJCV 2019), that one frame is turned into many short
videos: every object is cut out with its mask, the hole it leaves is filled from its surroundings,
and objects and background then move along independent smooth random paths (translation with
velocity and acceleration, rotation, zoom, a little stretching), under a slowly moving camera and
colour changes. The network fine-tuned on these snippets has seen exactly this object against
exactly this background, which is what a model trained on little data lacks.

All geometry is expressed as per-frame affine maps from output pixels to source pixels and applied
with one ``grid_sample`` per layer, so a snippet costs a few milliseconds at 240p.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vos_cli.data.transforms import IGNORE_LABEL, AugmentConfig, color_jitter
from vos_cli.errors import VosError


@dataclass(frozen=True)
class DreamMotion:
    """Ranges of the random paths; per-frame quantities relative to the frame diagonal."""

    offset: float = 0.06
    """Standard deviation of an object's start displacement from where it was annotated."""
    speed: float = 0.02
    """Maximum object speed per frame."""
    acceleration: float = 0.002
    """Standard deviation of the object acceleration per frame squared."""
    scale: float = 0.15
    """Maximum absolute log-scale of an object at the start (1.16x larger or smaller)."""
    zoom_speed: float = 0.02
    """Standard deviation of the object's log-scale change per frame."""
    rotation: float = 0.15
    """Maximum start rotation, radians."""
    angular_speed: float = 0.02
    """Standard deviation of the rotation speed, radians per frame."""
    stretch_speed: float = 0.015
    """Standard deviation of the per-frame change of log aspect ratio (non-rigid look)."""
    elastic: float = 0.0
    """Growth per frame of a smooth random warp of each object (non-rigid shape change), as a
    fraction of the object's size (square root of its area)."""
    camera_zoom: float = 0.1
    """Maximum log-zoom of the camera at the start (zooming in only, so no border shows)."""
    camera_speed: float = 0.008
    """Maximum camera pan per frame."""
    camera_zoom_speed: float = 0.01
    """Standard deviation of the camera's log-zoom change per frame."""


def dilate(mask: Tensor, radius: int) -> Tensor:
    """Binary dilation of an (H, W) bool mask by a square of side 2 * radius + 1."""
    if radius <= 0:
        return mask
    pooled = F.max_pool2d(mask[None, None].float(), 2 * radius + 1, stride=1, padding=radius)
    return pooled[0, 0] > 0


def fill_holes(image: Tensor, hole: Tensor) -> Tensor:
    """Fill ``hole`` (H, W bool) of a (3, H, W) image from its surroundings (push-pull).

    The known pixels are averaged down an image pyramid until every level-pixel has support,
    then the coarse averages are pulled back up into the unknown pixels only, giving a smooth
    fill that matches the colours around the hole. Known pixels are returned unchanged.
    """
    known = (~hole).float()[None, None]
    if not bool(known.any()):
        mean = image.mean(dim=(1, 2), keepdim=True)
        return mean.expand_as(image).clone()
    levels = [(image[None] * known, known)]
    while min(levels[-1][1].shape[-2:]) > 1 and not bool((levels[-1][1] > 0).all()):
        value, weight = levels[-1]
        levels.append(
            (
                F.avg_pool2d(value, 2, ceil_mode=True),
                F.avg_pool2d(weight, 2, ceil_mode=True),
            )
        )
    value, weight = levels[-1]
    filled = value / weight.clamp_min(1e-8)
    if not bool((weight > 0).all()):  # a 1-pixel level without support: the global mean
        filled = torch.where(
            weight > 0, filled, (value.sum((2, 3)) / weight.sum()).view(1, 3, 1, 1)
        )
    for value, weight in reversed(levels[:-1]):
        up = F.interpolate(filled, size=value.shape[-2:], mode="bilinear", align_corners=False)
        own = value / weight.clamp_min(1e-8)
        # Blend by how much of each pixel's neighbourhood was known at this level.
        w = weight.clamp(0.0, 1.0)
        filled = w * own + (1.0 - w) * up
    return torch.where(hole[None], filled[0], image)


def _rotation_scale(theta: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    """(T, 2, 2) matrices R(theta) @ diag(sx, sy)."""
    cos, sin = np.cos(theta), np.sin(theta)
    return np.stack([np.stack([cos * sx, -sin * sy], -1), np.stack([sin * sx, cos * sy], -1)], -2)


def _invert(matrix: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of x -> matrix @ x + shift, batched over the first axis."""
    inverse = np.linalg.inv(matrix)
    return inverse, -np.einsum("tij,tj->ti", inverse, shift)


class FirstFrameDreamer:
    """Makes snippets (T, 3, H, W) with labels (T, H, W) from one frame and its label map.

    ``image``: (3, H, W) float RGB in [0, 1]; ``labels``: (H, W) int64, 0 background, objects
    1..O (every id present), 255 ignored. Snippets are a pure function of the ``rng`` passed to
    :meth:`sample`.
    """

    def __init__(
        self,
        image: Tensor,
        labels: Tensor,
        num_frames: int,
        motion: DreamMotion = DreamMotion(),
        augment: AugmentConfig | None = AugmentConfig(),
        hole_margin: int = 3,
        min_visible: float = 0.3,
    ) -> None:
        if image.dim() != 3 or image.shape[0] != 3 or labels.shape != image.shape[1:]:
            raise VosError("dreaming needs a (3, H, W) image and an (H, W) label map")
        if num_frames < 2:
            raise VosError("a dreamed snippet needs at least 2 frames")
        self.image = image.float()
        self.labels = labels.long()
        ids = sorted(set(torch.unique(self.labels).tolist()) - {0, IGNORE_LABEL})
        if ids != list(range(1, len(ids) + 1)):
            raise VosError(f"object ids must be 1..O, got {ids}")
        if not ids:
            raise VosError("the frame to dream from has no object")
        self.num_objects = len(ids)
        self.num_frames = int(num_frames)
        self.motion = motion
        self.augment = augment
        self.min_visible = float(min_visible)
        height, width = self.labels.shape
        self.size = (height, width)
        self.diag = float(np.hypot(height, width))
        # Output pixel coordinates, shared by every sampling grid.
        self._ys, self._xs = torch.meshgrid(
            torch.arange(height, dtype=torch.float32),
            torch.arange(width, dtype=torch.float32),
            indexing="ij",
        )
        objects = (self.labels > 0) & (self.labels != IGNORE_LABEL)
        # Unlabelled pixels stay unlabelled wherever the camera moves them (unless an object
        # passes in front): in-painting them as background would invent ground truth.
        self.ignored = self.labels == IGNORE_LABEL
        self.background = fill_holes(self.image, dilate(objects, hole_margin))
        # Each object as a premultiplied RGBA layer in the frame's own coordinates (so a
        # resampled edge does not bring in the colour around the object), with its centroid.
        self.layers: list[Tensor] = []
        self.centres: list[np.ndarray] = []
        self.areas: list[float] = []
        for k in range(1, self.num_objects + 1):
            alpha = (self.labels == k).float()
            ys, xs = torch.nonzero(alpha > 0, as_tuple=True)
            self.layers.append(torch.cat([self.image * alpha, alpha[None]], dim=0))
            self.centres.append(np.array([xs.float().mean().item(), ys.float().mean().item()]))
            self.areas.append(float(alpha.sum()))

    # -- geometry --------------------------------------------------------------------------
    def _grid(self, matrix: np.ndarray, shift: np.ndarray) -> Tensor:
        """Sampling grid (T, H, W, 2) for output pixel p -> source pixel matrix @ p + shift."""
        height, width = self.size
        ys, xs = self._ys, self._xs
        m = torch.from_numpy(matrix.astype(np.float32))
        b = torch.from_numpy(shift.astype(np.float32))
        src_x = m[:, 0, 0, None, None] * xs + m[:, 0, 1, None, None] * ys + b[:, 0, None, None]
        src_y = m[:, 1, 0, None, None] * xs + m[:, 1, 1, None, None] * ys + b[:, 1, None, None]
        # Pixel centres to grid_sample's [-1, 1] (align_corners=False).
        return torch.stack([(2 * src_x + 1) / width - 1, (2 * src_y + 1) / height - 1], dim=-1)

    def _camera(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Output pixel -> frame coordinates: a slow pan and zoom about the frame centre."""
        m, t = self.motion, np.arange(self.num_frames, dtype=np.float64)
        height, width = self.size
        centre = np.array([(width - 1) / 2, (height - 1) / 2])
        zoom = np.exp(-rng.uniform(0.0, m.camera_zoom) + rng.normal(0, m.camera_zoom_speed) * t)
        heading = rng.uniform(0, 2 * np.pi)
        pan = rng.uniform(0, m.camera_speed) * self.diag * t
        matrix = _rotation_scale(np.zeros_like(t), zoom, zoom)
        shift = centre - np.einsum("tij,j->ti", matrix, centre)
        shift = shift + np.stack([pan * np.cos(heading), pan * np.sin(heading)], -1)
        return matrix, shift

    def _object_path(
        self, centre: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Frame coordinates -> the object's annotated coordinates, per frame."""
        m, t = self.motion, np.arange(self.num_frames, dtype=np.float64)
        offset = rng.normal(0, m.offset * self.diag, size=2)
        heading = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(0, m.speed) * self.diag
        acc = rng.normal(0, m.acceleration * self.diag, size=2)
        displacement = (
            offset
            + speed * np.stack([np.cos(heading) * t, np.sin(heading) * t], -1)
            + 0.5 * acc * (t**2)[:, None]
        )
        log_scale = rng.uniform(-m.scale, m.scale) + rng.normal(0, m.zoom_speed) * t
        stretch = rng.normal(0, m.stretch_speed) * t
        theta = rng.uniform(-m.rotation, m.rotation) + rng.normal(0, m.angular_speed) * t
        sx, sy = np.exp(log_scale + stretch / 2), np.exp(log_scale - stretch / 2)
        forward = _rotation_scale(theta, sx, sy)  # object coords -> frame, about its centre
        shift = centre + displacement - np.einsum("tij,j->ti", forward, centre)
        return _invert(forward, shift)

    def _elastic(self, area: float, rng: np.random.Generator) -> Tensor | float:
        """A smooth displacement (T, H, W, 2) in grid units growing linearly from frame 0."""
        amplitude = self.motion.elastic * np.sqrt(area)
        if amplitude <= 0:
            return 0.0
        height, width = self.size
        coarse = torch.from_numpy(rng.normal(0, amplitude, size=(1, 2, 4, 4)).astype(np.float32))
        field = F.interpolate(coarse, size=self.size, mode="bicubic", align_corners=True)[0]
        field = field.permute(1, 2, 0) * torch.tensor([2.0 / width, 2.0 / height])
        steps = torch.arange(self.num_frames, dtype=torch.float32).view(-1, 1, 1, 1)
        return steps * field

    # -- sampling --------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        """One snippet: images (T, 3, H, W) float32 in [0, 1] and labels (T, H, W) int64."""
        t = self.num_frames
        cam_m, cam_b = self._camera(rng)
        camera_grid = self._grid(cam_m, cam_b)  # shared by the background and the ignore map
        images = F.grid_sample(
            self.background[None].expand(t, -1, -1, -1),
            camera_grid,
            mode="bilinear",
            padding_mode="reflection",
            align_corners=False,
        )
        labels = torch.zeros((t, *self.size), dtype=torch.long)
        if bool(self.ignored.any()):
            moved = F.grid_sample(
                self.ignored[None, None].float().expand(t, -1, -1, -1),
                camera_grid,
                mode="nearest",
                padding_mode="reflection",
                align_corners=False,
            )
            labels[moved[:, 0] > 0.5] = IGNORE_LABEL
        for k in rng.permutation(self.num_objects):  # back to front
            window = None
            for _ in range(10):  # keep the object well visible in frame 0
                obj_m, obj_b = self._object_path(self.centres[k], rng)
                # output -> frame (camera) -> object coordinates
                matrix = np.einsum("tij,tjk->tik", obj_m, cam_m)
                shift = np.einsum("tij,tj->ti", obj_m, cam_b) + obj_b
                window = F.grid_sample(
                    self.layers[k][None].expand(t, -1, -1, -1),
                    self._grid(matrix, shift) + self._elastic(self.areas[k], rng),
                    mode="bilinear",
                    padding_mode="zeros",
                    align_corners=False,
                )
                if float((window[0, 3] >= 0.5).sum()) >= self.min_visible * self.areas[k]:
                    break
            assert window is not None
            alpha = window[:, 3:4]
            images.mul_(1.0 - alpha).add_(window[:, :3])
            labels[alpha[:, 0] >= 0.5] = int(k) + 1
        if self.augment is not None:
            images = color_jitter(images, rng, self.augment)
        return images.contiguous(), labels
