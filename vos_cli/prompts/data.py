"""Objects to train and evaluate the mask maker on: instance-mask folders and DAVIS 2016 frames.

An :class:`ObjectItem` is one object in one image. Sources:

* ``instances``: an ``images/`` + ``masks/`` folder (coco-extra, coco-person, weizmann-horse) read
  by :func:`vos_cli.data.synth_sources.load_instance_folder` (``train``: all but every 10th
  name, ``val``: every 10th). 255 in a mask is "unknown" (COCO crowd): ignored by the loss and
  never clicked. ``partial = true`` marks folders whose other objects are not annotated
  (coco-person): no negative click is ever simulated there and background pixels weigh
  ``partial_bg_weight`` in the loss.
* ``davis16``: DAVIS 2016 frames (``Annotations`` 0/255, one object): every ``every``-th frame of
  the sequences in ``ImageSets/2016/<split>.txt`` (``dev``: only frame 0, the evaluation's).

A training sample (:class:`PromptCrops`) is deterministic in (seed, index): the box is the
object's tight box with every edge moved by Gaussian noise of ``box_jitter`` times the box's side,
the crop resampled around it as the predictor does; with ``no_box_prob`` the object is given by
a click alone in a wider crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vos_cli.errors import VosError
from vos_cli.prompts.clicks import distance_inside
from vos_cli.prompts.model import MaskMakerConfig
from vos_cli.prompts.predictor import box_map, crop_window, resample_crop
from vos_cli.prompts.types import Box, Point

SOURCE_KINDS = ("instances", "davis16")


@dataclass(frozen=True)
class ObjectItem:
    image: Path
    mask: Path
    object_id: int
    """The object's pixels are ``mask == object_id``; 0 for DAVIS (any pixel >= 128)."""
    partial: bool = False
    source: str = ""

    def load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rgb HxWx3 uint8, object HxW bool, ignore HxW bool)."""
        try:
            with Image.open(self.image) as img:
                rgb = np.asarray(img.convert("RGB"))
            with Image.open(self.mask) as m:
                labels = np.asarray(m)
        except OSError as exc:
            raise VosError(f"cannot read {self.image} or {self.mask}: {exc}") from None
        if labels.ndim == 3:
            labels = labels[..., 0]
        if self.object_id == 0:
            return rgb, labels >= 128, np.zeros(labels.shape, bool)
        return rgb, labels == self.object_id, labels == 255


def tight_box(mask: np.ndarray) -> Box:
    """The smallest box holding every pixel of ``mask`` (pixel edges: x1 = last column + 1)."""
    ys, xs = np.nonzero(mask)
    return Box(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def margin_box(mask: np.ndarray, margin: float = 0.05) -> Box:
    """The evaluation's box: the tight box with ``margin`` of its side added on every edge,
    clipped to the image."""
    box = tight_box(mask)
    h, w = mask.shape
    mx, my = margin * box.width, margin * box.height
    return Box(
        max(0.0, box.x0 - mx), max(0.0, box.y0 - my), min(w, box.x1 + mx), min(h, box.y1 + my)
    )


def load_items(
    kind: str,
    root: str | Path,
    split: str,
    partial: bool = False,
    every: int = 5,
    min_area: float = 0.01,
) -> list[ObjectItem]:
    """The objects of one source (see the module docstring)."""
    root = Path(root).expanduser()
    name = root.name
    if kind == "instances":
        from vos_cli.data.synth_sources import load_instance_folder

        instances, _ = load_instance_folder(root, split, min_area=min_area, max_area=0.9)
        return [
            ObjectItem(i.image_path, i.mask_path, int(i.mask_id), partial, name)
            for i in instances
            if i.mask_path is not None and i.mask_id is not None
        ]
    if kind == "davis16":
        listing = root / "ImageSets" / "2016" / f"{split}.txt"
        if not listing.is_file():
            raise VosError(f"{root}: no ImageSets/2016/{split}.txt (not a DAVIS 2016 folder?)")
        items = []
        for seq in listing.read_text().split():
            frames = sorted((root / "JPEGImages" / "480p" / seq).glob("*.jpg"))
            step = len(frames) if split == "dev" else max(1, every)
            for jpg in frames[::step]:
                png = root / "Annotations" / "480p" / seq / f"{jpg.stem}.png"
                if png.is_file():
                    items.append(ObjectItem(jpg, png, 0, False, f"davis16-{split}"))
        if not items:
            raise VosError(f"{root}: no frames with annotations for split {split!r}")
        return items
    raise VosError(f"unknown mask maker data kind {kind!r} (choose {', '.join(SOURCE_KINDS)})")


@dataclass
class SampleSettings:
    box_jitter: float = 0.08
    no_box_prob: float = 0.1
    flip: bool = True
    color_jitter: float = 0.2


def jittered_box(mask: np.ndarray, rng: np.random.Generator, jitter: float) -> Box:
    box = tight_box(mask)
    h, w = mask.shape
    dx, dy = jitter * box.width, jitter * box.height
    x0 = box.x0 + rng.normal(0, dx)
    x1 = box.x1 + rng.normal(0, dx)
    y0 = box.y0 + rng.normal(0, dy)
    y1 = box.y1 + rng.normal(0, dy)
    x0, x1 = np.clip([x0, x1], 0, w)
    y0, y1 = np.clip([y0, y1], 0, h)
    if x1 - x0 < 2:
        x0, x1 = max(0.0, (x0 + x1) / 2 - 1), min(float(w), (x0 + x1) / 2 + 1)
    if y1 - y0 < 2:
        y0, y1 = max(0.0, (y0 + y1) / 2 - 1), min(float(h), (y0 + y1) / 2 + 1)
    return Box(float(x0), float(y0), float(x1), float(y1))


def random_inside_click(mask: np.ndarray, rng: np.random.Generator) -> Point:
    """A click a person might make: a random pixel well inside the object (at least a third of
    the largest inner distance from the boundary)."""
    dist = distance_inside(mask)
    ok = np.argwhere(dist >= dist.max() / 3)
    y, x = ok[rng.integers(len(ok))]
    return Point(float(x), float(y), True)


def make_sample(
    item: ObjectItem,
    config: MaskMakerConfig,
    settings: SampleSettings,
    rng: np.random.Generator,
) -> dict[str, torch.Tensor]:
    """One training crop: image (3,S,S) in [0,1], target and ignore (S,S), box map (S,S),
    ``click`` (3: x, y in crop pixels, 1 when the sample is a click-only one, else 0),
    ``partial`` (1 for a partially annotated source)."""
    rgb, obj, ignore = item.load()
    h, w = obj.shape
    size = config.crop_size
    if not obj.any():
        raise VosError(f"{item.mask}: object {item.object_id} has no pixel")
    clicked = rng.random() < settings.no_box_prob
    if clicked:
        tight = tight_box(obj)
        window = crop_window(tight, float(rng.uniform(1.5, 3.0)), config.max_aspect)
        box = None
    else:
        box = jittered_box(obj, rng, settings.box_jitter)
        window = crop_window(box, config.context, config.max_aspect)
    image = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float() / 255.0 - 0.5
    planes = torch.from_numpy(np.stack([obj, ignore]).astype(np.float32))
    crop = resample_crop(image, [window], size)[0] + 0.5
    masks = resample_crop(planes, [window], size)[0]
    target = (masks[0] >= 0.5).float()
    ign = masks[1] > 0.05
    bmap = box_map(box, window, size)
    click = torch.zeros(3)
    if clicked:
        inside = target.numpy() > 0.5
        if inside.any():
            p = random_inside_click(inside, rng)
            click = torch.tensor([p.x, p.y, 1.0])
    if settings.flip and rng.random() < 0.5:
        crop, target, ign, bmap = (t.flip(-1) for t in (crop, target, ign, bmap))
        if click[2] > 0:
            click[0] = size - 1 - click[0]
    if settings.color_jitter > 0:
        gain = 1 + float(rng.uniform(-settings.color_jitter, settings.color_jitter))
        bias = float(rng.uniform(-settings.color_jitter, settings.color_jitter)) / 4
        crop = ((crop - 0.5) * gain + 0.5 + bias).clamp(0, 1)
    return {
        "image": crop.contiguous(),
        "target": target,
        "ignore": ign,
        "box": bmap,
        "click": click,
        "partial": torch.tensor(float(item.partial)),
    }


class PromptSamples(torch.utils.data.Dataset):
    """Sample ``i`` is a pure function of (seed, i): a source by weight, then an object of it."""

    def __init__(
        self,
        sources: list[tuple[list[ObjectItem], float]],
        config: MaskMakerConfig,
        settings: SampleSettings,
        seed: int = 0,
    ) -> None:
        self.sources = [(items, w) for items, w in sources if items and w > 0]
        if not self.sources:
            raise VosError("the mask maker's training data is empty")
        weights = np.array([w for _, w in self.sources], dtype=np.float64)
        self.p = weights / weights.sum()
        self.config = config
        self.settings = settings
        self.seed = seed

    def __len__(self) -> int:
        return 1 << 40

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        items, _ = self.sources[int(rng.choice(len(self.sources), p=self.p))]
        item = items[int(rng.integers(len(items)))]
        return make_sample(item, self.config, self.settings, rng)
