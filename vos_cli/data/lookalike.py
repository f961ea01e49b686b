"""A validation set where a mask leaks: objects tracked among look-alikes of their own class.

DAVIS-like validation hides the failure that costs vos most on real video: a mask that spreads
over look-alike background and grows with every fed-back frame. These videos make it likely on
purpose: the target is pasted among 2-4 others of the same class (people among people, horses
among horses, sometimes an exact twin) over a real scene, and the clip is long enough (40 frames
by default, at DAVIS's 480p) for a leak to compound. The objects come from the held-out split of
the instance-mask folders (every 10th image, :func:`~vos_cli.data.synth_sources.holdout_split`),
which no training config reads, and the result is written in DAVIS 2016 layout, so
``vos bench davis16 --root DIR --split val`` scores it and reports the leak measures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vos_cli.data.synth import MotionConfig, SynthVOS
from vos_cli.data.synth_sources import load_instance_folder
from vos_cli.errors import VosError
from vos_cli.io.paths import prepare_output_dir

#: Slow, smooth paths: objects stay in view over 40 frames and cross each other's paths.
LOOKALIKE_MOTION = MotionConfig(
    extent=(0.18, 0.4),
    speed=0.006,
    acceleration=0.0003,
    initial_rotation=0.15,
    angular_speed=0.004,
    zoom_speed=0.006,
    camera_speed=0.002,
)


#: Objects under this share of their own image are slivers (a foot at the border), not a target.
MIN_OBJECT_AREA = 0.04
#: A target is kept only if every frame shows at least this share of its frame-0 area: a target
#: hidden or gone makes J a coin toss rather than a measure of the leak.
MIN_VISIBLE = 0.4
#: ... and if it covers at least this share of frame 0.
MIN_FIRST_AREA = 0.01


def _stays_visible(labels: np.ndarray) -> bool:
    areas = (labels == 1).reshape(labels.shape[0], -1).sum(1)
    first = areas[0]
    return first >= MIN_FIRST_AREA * labels[0].size and areas.min() >= MIN_VISIBLE * first


@dataclass(frozen=True)
class LookalikeSource:
    """One class of objects: an instance-mask folder and how many videos to make from it."""

    name: str
    root: Path
    videos: int


def write_lookalike_set(
    out_dir: Path,
    sources: Sequence[LookalikeSource],
    backgrounds_root: Path,
    *,
    num_frames: int = 40,
    size: tuple[int, int] = (480, 854),
    seed: int = 0,
    twin_prob: float = 0.25,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[str]:
    """Write the videos as ``JPEGImages/480p/<seq>/`` + ``Annotations/480p/<seq>/`` (0/255).

    Returns the sequence names (also written to ``ImageSets/2016/val.txt``). The same arguments
    always give the same pixels.
    """
    if num_frames < 3:
        raise VosError("a look-alike video needs at least 3 frames (the benchmark scores 1..T-2)")
    out_dir = prepare_output_dir(Path(out_dir), force)
    backgrounds = load_instance_folder(Path(backgrounds_root), "val")[1]
    total = sum(s.videos for s in sources)
    names: list[str] = []
    for k, source in enumerate(sources):
        instances, _ = load_instance_folder(Path(source.root), "val", min_area=MIN_OBJECT_AREA)
        dataset = SynthVOS(
            instances,
            backgrounds,
            num_frames,
            size,
            mode="single",
            augment=False,
            seed=seed * 1000 + k,
            samples_per_epoch=source.videos,
            name=source.name,
            max_pasted=5,
            min_pasted=3,
            motion=LOOKALIKE_MOTION,
            twin_prob=twin_prob,
        )
        index = 0
        for made in range(source.videos):
            snippet = dataset.sample(0, index)
            while not _stays_visible(snippet["labels"].numpy()):
                index += 1
                if index > 50 * source.videos:
                    raise VosError(f"{source.root}: too few objects stay in view; add images")
                snippet = dataset.sample(0, index)
            index += 1
            name = f"{source.name}-{made:02d}"
            _write_sequence(out_dir, name, snippet["images"].numpy(), snippet["labels"].numpy())
            names.append(name)
            if progress is not None:
                progress(len(names), total)
    split_file = out_dir / "ImageSets" / "2016" / "val.txt"
    split_file.parent.mkdir(parents=True, exist_ok=True)
    split_file.write_text("".join(f"{n}\n" for n in names))
    return names


def _write_sequence(out_dir: Path, name: str, images: np.ndarray, labels: np.ndarray) -> None:
    """(T, 3, H, W) floats in [0, 1] and (T, H, W) ids -> JPEG frames and 0/255 PNG masks."""
    frames = out_dir / "JPEGImages" / "480p" / name
    masks = out_dir / "Annotations" / "480p" / name
    frames.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    for t in range(images.shape[0]):
        rgb = np.clip(images[t].transpose(1, 2, 0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(frames / f"{t:05d}.jpg", quality=90)
        Image.fromarray(((labels[t] == 1) * 255).astype(np.uint8)).save(masks / f"{t:05d}.png")
