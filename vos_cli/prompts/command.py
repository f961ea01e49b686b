"""``vos mask`` and ``vos segment --box``'s work: read a frame, run the mask maker, write files.

The command line only parses options; everything that can go wrong with the user's input is a
VosError raised here before any network runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from vos_cli.errors import VosError
from vos_cli.io.atomic import write_atomically
from vos_cli.io.masks import write_mask
from vos_cli.io.overlay import render_overlay
from vos_cli.io.paths import prepare_output_file
from vos_cli.prompts.types import (
    ObjectPrompt,
    check_prompts,
    group_prompts,
    ordered_prompt_options,
)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def prompts_from_cli(
    raw: Sequence[str] | None,
    boxes: Sequence[str] | None,
    points: Sequence[str] | None,
    bg_points: Sequence[str] | None,
) -> list[ObjectPrompt]:
    """The objects of a command's --box / --point / --bg-point options, in the order typed
    (``raw``: the command's arguments, ``ctx.meta["vos_raw_args"]`` of a KeepsArgsCommand)."""
    options = ordered_prompt_options(raw, boxes or [], points or [], bg_points or [])
    return group_prompts(options)


def read_frame(source: Path, frame: int = 0) -> np.ndarray:
    """Frame ``frame`` of an image, a video or a frame folder as HxWx3 uint8 RGB."""
    source = Path(source).expanduser()
    if frame < 0:
        raise VosError(f"--frame must be 0 or more, got {frame}")
    if source.is_file() and source.suffix.lower() in IMAGE_SUFFIXES:
        if frame != 0:
            raise VosError(f"{source} is one image: --frame {frame} is not in it (only 0)")
        try:
            with Image.open(source) as img:
                return np.asarray(img.convert("RGB"))
        except (UnidentifiedImageError, OSError) as exc:
            raise VosError(f"cannot read image {source}: {exc}") from None
    from vos_cli.io.video import open_frames

    frames = open_frames(source)
    count = 0
    try:
        for rgb in frames:
            if count == frame:
                return np.ascontiguousarray(rgb)
            count += 1
    finally:
        frames.close()
    raise VosError(f"--frame {frame}: {source} has only {count} frames (the first is 0)")


def preview_path(out: Path) -> Path:
    """``mask.png`` -> ``mask-preview.png`` beside it."""
    return out.with_name(f"{out.stem}-preview{out.suffix}")


@dataclass
class MaskResult:
    labels: np.ndarray
    out: Path
    preview: Path | None
    seconds: float
    warnings: list[str]


def make_label_map(
    rgb: np.ndarray,
    objects: list[ObjectPrompt],
    weights: Path | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """The label map of ``objects`` on ``rgb`` (ids 1.. in order) with the mask maker."""
    from vos_cli.prompts.predictor import MaskMaker

    height, width = rgb.shape[:2]
    check_prompts(objects, width, height)
    maker = MaskMaker.load(weights, device=_device(device))
    maker.set_image(rgb)
    return maker.predict(objects)


def empty_objects(labels: np.ndarray, objects: list[ObjectPrompt]) -> list[str]:
    """A warning for each object that got no pixel (a --point on it usually helps)."""
    return [
        f"the mask maker found nothing for object {i} ({_describe(prompt)}); add a --point on it"
        for i, prompt in enumerate(objects, 1)
        if not (labels == i).any()
    ]


def make_mask_file(
    source: Path,
    objects: list[ObjectPrompt],
    out: Path,
    frame: int = 0,
    preview: bool = True,
    weights: Path | None = None,
    device: str = "cpu",
    force: bool = False,
) -> MaskResult:
    """``vos mask``: the checks, the network, then the PNG (and the preview) written atomically."""
    import time

    if out.suffix.lower() != ".png":
        raise VosError(f"--out must be a .png file (a palette PNG), got {out}")
    if not objects:
        raise VosError("no object given: pass --box X0,Y0,X1,Y1 or --point X,Y")
    source = Path(source).expanduser()
    if not source.exists():
        raise VosError(f"not found: {source}")
    previews = preview_path(out) if preview else None
    protect = [source] + ([weights] if weights is not None else [])
    prepare_output_file(out, force, protect=protect)
    if previews is not None:
        prepare_output_file(previews, force, protect=protect)
    rgb = read_frame(source, frame)
    tic = time.perf_counter()
    labels = make_label_map(rgb, objects, weights, device)
    seconds = time.perf_counter() - tic
    write_mask(out, labels)
    if previews is not None:
        shown = Image.fromarray(render_overlay(rgb, labels))
        write_atomically(previews, lambda file: shown.save(file, format="PNG"), "preview")
    return MaskResult(labels, out, previews, seconds, empty_objects(labels, objects))


def _describe(prompt: ObjectPrompt) -> str:
    parts = [f"box {prompt.box}"] if prompt.box is not None else []
    parts += [("point " if p.positive else "bg-point ") + str(p) for p in prompt.points]
    return ", ".join(parts)


def _device(device: str) -> str:
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise VosError(f"--device takes auto, cpu or cuda, got {device!r}")
    return device
