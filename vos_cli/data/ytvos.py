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


def load_ytvos(
    root: Path, split: str = "train", videos: Iterable[str] | None = None
) -> list[YouTubeVOSVideo]:
    """Load YouTube-VOS videos from ``root/<split>`` (or ``root`` itself if it holds the layout).

    Annotated frames are those listed in ``meta.json`` for any object that also have a PNG in
    ``Annotations``; without ``meta.json`` every PNG there counts. Videos with no annotated frame
    are skipped.
    """
    root = Path(root)
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
