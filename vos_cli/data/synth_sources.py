"""Where SynthVOS gets its objects and backgrounds from: instance-annotated image folders.

Object sources:

* YOLO segmentation layout (e.g. coco128-seg): ``<root>/labels/<split>/<id>.txt`` with one instance
  a line, ``class x1 y1 x2 y2 ...`` normalised to [0, 1], and ``<root>/images/<split>/<id>.jpg``.
  Tiny instances (< ``min_area`` of the image) and huge, crowd-like ones are skipped.
* Salient-object folders (MSRA10K style): ``<name>.jpg`` with its mask ``<name>.png`` side by side.
* Instance-mask folders (coco-extra, coco-person, weizmann-horse): ``images/<name>.jpg`` and
  ``masks/<name>.png``, the mask holding 0 (background), 1..N (instances) and 255 (unknown).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vos_cli.errors import VosError

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class ObjectInstance:
    """One pasteable object: its image and either a normalised polygon or a mask file."""

    image_path: Path
    polygon: tuple[float, ...] | None = None
    """Flat ``x1, y1, x2, y2, ...`` in [0, 1] image coordinates (YOLO segmentation format)."""
    mask_path: Path | None = None
    """Binary mask image (non-zero/above mid-gray = object), same size as the image."""
    mask_id: int | None = None
    """With ``mask_path``: the object is the pixels equal to this id (an instance-mask file)."""


def _polygon_area(xy: np.ndarray) -> float:
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _find_image(folder: Path, stem: str) -> Path | None:
    for suffix in _IMAGE_SUFFIXES:
        for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def list_images(folder: Path) -> list[Path]:
    """All images in ``folder`` (non-recursive, sorted), e.g. to serve as backgrounds."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VosError(f"{folder}: no such image folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)


def load_yolo_instances(
    root: Path, split: str = "train2017", min_area: float = 0.01, max_area: float = 0.5
) -> list[ObjectInstance]:
    """Instances of a YOLO segmentation dataset covering [min_area, max_area] of their image.

    Tiny objects do not survive downscaling into a snippet; huge ones are mostly crowd or "stuff"
    annotations that look nothing like a movable object.
    """
    root = Path(root)
    labels_dir, images_dir = root / "labels" / split, root / "images" / split
    if not labels_dir.is_dir() or not images_dir.is_dir():
        raise VosError(
            f"{root}: not a YOLO segmentation folder (need labels/{split}, images/{split})"
        )
    instances: list[ObjectInstance] = []
    for label_file in sorted(labels_dir.glob("*.txt")):
        image = _find_image(images_dir, label_file.stem)
        if image is None:
            continue
        for lineno, line in enumerate(label_file.read_text().splitlines(), 1):
            values = line.split()
            if len(values) < 7:
                continue
            try:
                coords = np.asarray(values[1:], dtype=np.float64)
            except ValueError:
                raise VosError(f"{label_file}:{lineno}: not a YOLO segmentation line") from None
            if coords.size % 2:
                coords = coords[:-1]
            area = _polygon_area(coords.reshape(-1, 2))
            if min_area <= area <= max_area:
                instances.append(ObjectInstance(image, polygon=tuple(coords.tolist())))
    if not instances:
        raise VosError(f"{root}: no usable object instances in labels/{split}")
    return instances


def load_salient_instances(folder: Path) -> list[ObjectInstance]:
    """One instance per ``<name>.png`` mask that has an image ``<name>.jpg`` (or other suffix)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VosError(f"{folder}: no such salient-object folder")
    instances = []
    for mask in sorted(folder.glob("*.png")):
        image = next(
            (
                p
                for p in (folder / f"{mask.stem}{s}" for s in (".jpg", ".jpeg", ".JPG", ".bmp"))
                if p.is_file()
            ),
            None,
        )
        if image is not None:
            instances.append(ObjectInstance(image, mask_path=mask))
    if not instances:
        raise VosError(f"{folder}: no <name>.jpg + <name>.png image/mask pairs")
    return instances


#: Every HOLDOUT_EVERY-th image of an instance-mask folder (sorted by name) is held out.
HOLDOUT_EVERY = 10
INSTANCE_SPLITS = ("all", "train", "val")


def holdout_split(paths: list[Path], split: str) -> list[Path]:
    """``train``: all but every 10th of the sorted names; ``val``: those; ``all``: every one.

    A fixed rule on names (not a seed), so the look-alike validation never shares an image with
    training, whatever the config.
    """
    if split not in INSTANCE_SPLITS:
        raise VosError(f"unknown split {split!r} (choose {', '.join(INSTANCE_SPLITS)})")
    ordered = sorted(paths, key=lambda p: p.name)
    if split == "all":
        return ordered
    held = split == "val"
    return [p for i, p in enumerate(ordered) if (i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1) == held]


def load_instance_folder(
    root: Path, split: str = "train", min_area: float = 0.01, max_area: float = 0.6
) -> tuple[list[ObjectInstance], list[Path]]:
    """Instances (one per id) and the images of an ``images/`` + ``masks/`` folder.

    Instances under ``min_area`` of their image are too small to survive a snippet's scale;
    over ``max_area`` they are mostly the scene itself.
    """
    root = Path(root)
    masks_dir, images_dir = root / "masks", root / "images"
    if not masks_dir.is_dir() or not images_dir.is_dir():
        raise VosError(f"{root}: not an instance-mask folder (need images/ and masks/)")
    instances: list[ObjectInstance] = []
    images: list[Path] = []
    for mask_path in holdout_split(list(masks_dir.glob("*.png")), split):
        image = _find_image(images_dir, mask_path.stem)
        if image is None:
            continue
        images.append(image)
        try:
            with Image.open(mask_path) as m:
                labels = np.asarray(m)
        except (OSError, ValueError) as exc:
            raise VosError(f"cannot read mask {mask_path}: {exc}") from None
        if labels.ndim != 2:
            raise VosError(f"{mask_path}: an instance mask must be single-channel")
        counts = np.bincount(labels.ravel(), minlength=256)
        for obj_id in np.nonzero(counts[1:255])[0] + 1:
            if min_area <= counts[obj_id] / labels.size <= max_area:
                instances.append(ObjectInstance(image, mask_path=mask_path, mask_id=int(obj_id)))
    if not instances:
        raise VosError(f"{root}: no usable object instances in split {split!r}")
    return instances, images


def load_synth_source(
    root: Path, split: str = "train2017"
) -> tuple[list[ObjectInstance], list[Path]]:
    """Objects and background images of a folder, YOLO layout or salient-object folder (detected).

    Backgrounds are the same images the objects come from; SynthVOS never puts an object on its
    own image.
    """
    root = Path(root)
    if (root / "labels").is_dir():
        instances = load_yolo_instances(root, split)
        return instances, list_images(root / "images" / split)
    instances = load_salient_instances(root)
    return instances, [inst.image_path for inst in instances]
