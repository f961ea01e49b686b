"""YouTube-VOS training videos, exposed over their annotated frames only.

Layout (the official train split)::

    <root>/train/JPEGImages/<video>/<frame>.jpg
    <root>/train/Annotations/<video>/<frame>.png   (palette PNG, every 5th frame annotated)
    <root>/train/meta.json
        {"videos": {video: {"objects": {"1": {"category": .., "frames": [..]}}}}}

A :class:`YouTubeVOSVideo` indexes only frames that have an annotation, so a snippet of T frames
from it spans 5T source frames. That matches how A-GAME was trained on YouTube-VOS: the loss needs
labels in every frame, and the larger motion between annotated frames is useful training signal.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from vos_cli.errors import VosError

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class YouTubeVOSVideo:
    """One YouTube-VOS video restricted to its annotated frames (a ``Video`` for snippets)."""

    name: str
    frame_paths: list[Path]
    annotation_paths: list[Path]
    object_ids: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frame_paths)

    def read_frame(self, i: int) -> np.ndarray:
        """Frame ``i`` (i-th annotated frame) as HxWx3 uint8 RGB."""
        with Image.open(self.frame_paths[i]) as img:
            return np.asarray(img.convert("RGB"))

    def read_annotation(self, i: int) -> np.ndarray:
        """Annotation ``i`` as HxW uint8 object ids (palette indices; 0 background)."""
        with Image.open(self.annotation_paths[i]) as img:
            if img.mode in ("P", "L"):
                return np.asarray(img, dtype=np.uint8)
            if img.mode == "I;16" or img.mode == "I":
                return np.asarray(img).astype(np.uint8)
            raise VosError(
                f"{self.annotation_paths[i]}: expected a palette or grayscale PNG, got {img.mode}"
            )

    def num_objects(self) -> int:
        """Highest object id (from meta.json; without it, read off the annotations once)."""
        if not self.object_ids:
            ids = set()
            for i in range(len(self)):
                ids.update(int(v) for v in np.unique(self.read_annotation(i)) if 0 < v < 255)
            self.object_ids = sorted(ids)
        return max(self.object_ids, default=0)


def _find_frame(folder: Path, stem: str) -> Path | None:
    for suffix in _IMAGE_SUFFIXES:
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


HOLDOUT_SALT = "vos-ytvos-holdout"


def heldout_videos(names: Iterable[str], count: int) -> list[str]:
    """The ``count`` videos held out of a YouTube-VOS folder for early stopping, sorted.

    The authors held out 300 training videos but did not publish which, so this is a fixed rule
    of ours: the videos whose SHA-256 of ``HOLDOUT_SALT + ":" + id`` sorts first. It depends on
    nothing but the ids, so every machine and every run holds out the same videos.
    """
    ranked = sorted(
        set(names), key=lambda n: hashlib.sha256(f"{HOLDOUT_SALT}:{n}".encode()).hexdigest()
    )
    if count < 0 or count > len(ranked):
        raise VosError(f"cannot hold out {count} of {len(ranked)} YouTube-VOS videos")
    return sorted(ranked[:count])


SELECTORS = ("heldout", "exclude-heldout", "list", "exclude-list")


def select_videos(names: list[str], selector: str) -> list[str]:
    """Apply a split's selector (the part after ``:``) to a folder's video ids, in order.

    ``heldout=N`` keeps the videos of :func:`heldout_videos`, ``exclude-heldout=N`` the others;
    ``list=FILE`` keeps the ids listed in FILE (one a line), ``exclude-list=FILE`` the others.
    """
    key, _, value = selector.partition("=")
    if key not in SELECTORS or not value:
        raise VosError(
            f"YouTube-VOS split selector {selector!r}: expected one of "
            + ", ".join(f"{k}=..." for k in SELECTORS)
        )
    if key.endswith("heldout"):
        if not value.isdigit():
            raise VosError(f"YouTube-VOS split selector {selector!r}: a count of videos")
        chosen = set(heldout_videos(names, int(value)))
    else:
        path = Path(value).expanduser()
        if not path.is_file():
            raise VosError(f"YouTube-VOS video list not found: {path}")
        chosen = {line.strip() for line in path.read_text().splitlines() if line.strip()}
        unknown = sorted(chosen - set(names))
        if unknown:
            raise VosError(f"{path}: videos not in the folder: {', '.join(unknown[:5])}")
    keep = not key.startswith("exclude-")
    return [n for n in names if (n in chosen) == keep]


def load_ytvos(
    root: Path, split: str = "train", videos: Iterable[str] | None = None
) -> list[YouTubeVOSVideo]:
    """Load YouTube-VOS videos from ``root/<split>`` (or ``root`` itself if it holds the layout).

    ``split`` is a folder, optionally with a selector after a colon, e.g. ``train:heldout=300``
    (see :func:`select_videos`). Annotated frames are those listed in ``meta.json`` for any object that also have a PNG in
    ``Annotations``; without ``meta.json`` every PNG there counts. Videos with no annotated frame
    are skipped.
    """
    root = Path(root)
    split, _, selector = split.partition(":")
    base = root / split
    if not (base / "JPEGImages").is_dir() and (root / "JPEGImages").is_dir():
        base = root
    images_dir, annotations_dir = base / "JPEGImages", base / "Annotations"
    if not images_dir.is_dir() or not annotations_dir.is_dir():
        raise VosError(f"{root}: not a YouTube-VOS folder (no {split}/JPEGImages, Annotations)")

    meta_path = base / "meta.json"
    meta: dict[str, dict] = {}
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())["videos"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise VosError(f"{meta_path}: not a YouTube-VOS meta.json ({exc})") from None

    names = (
        sorted(meta) if meta else sorted(p.name for p in annotations_dir.iterdir() if p.is_dir())
    )
    if selector:
        names = select_videos(names, selector)
    if videos is not None:
        wanted = list(videos)
        missing = [v for v in wanted if v not in set(names)]
        if missing:
            raise VosError(f"{root}: unknown YouTube-VOS videos: {', '.join(missing[:5])}")
        names = wanted

    result: list[YouTubeVOSVideo] = []
    for name in names:
        objects = meta.get(name, {}).get("objects", {})
        if objects:
            stems = sorted({f for obj in objects.values() for f in obj.get("frames", [])})
        else:
            stems = sorted(p.stem for p in (annotations_dir / name).glob("*.png"))
        frame_paths, annotation_paths = [], []
        for stem in stems:
            ann = annotations_dir / name / f"{stem}.png"
            frame = _find_frame(images_dir / name, stem)
            if ann.is_file() and frame is not None:
                frame_paths.append(frame)
                annotation_paths.append(ann)
        if not frame_paths:
            continue
        ids = sorted(int(k) for k in objects) if objects else []
        result.append(YouTubeVOSVideo(name, frame_paths, annotation_paths, ids))
    if not result:
        raise VosError(f"{root}: no YouTube-VOS video with annotated frames found")
    return result
