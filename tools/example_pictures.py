"""Remake the README's example pictures from the default model.

Runs ``vos segment`` on the example clip with ``--overlay`` and a ``--cutout`` folder of RGBA
PNGs (exact alpha, no codec in between), then tiles frames 0, 16, 33 and 49 at half size into
``examples/car-turn-overlay.jpg`` and ``examples/car-turn-cutout.jpg`` (the cut-out blended over
a 24-pixel grey checkerboard). Run from the repository root:

    python tools/example_pictures.py [--weights PATH]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
from PIL import Image

FRAMES = (0, 16, 33, 49)
CHECKER = 24


def checkerboard(height: int, width: int) -> np.ndarray:
    rows = (np.arange(height) // CHECKER)[:, None]
    cols = (np.arange(width) // CHECKER)[None, :]
    light = (rows + cols) % 2 == 0
    return np.where(light, 204, 153).astype(np.float32)[..., None].repeat(3, axis=2)


def over_checkerboard(rgba: np.ndarray) -> np.ndarray:
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    back = checkerboard(*rgba.shape[:2])
    return (rgba[..., :3] * alpha + back * (1.0 - alpha)).round().astype(np.uint8)


def tile(frames: list[np.ndarray]) -> Image.Image:
    """Four frames at half size in a 2x2 grid (the grid has the frames' own size)."""
    h, w = frames[0].shape[:2]
    sheet = Image.new("RGB", (w, h))
    for i, frame in enumerate(frames):
        small = Image.fromarray(frame).resize((w // 2, h // 2), Image.LANCZOS)
        sheet.paste(small, ((i % 2) * (w // 2), (i // 2) * (h // 2)))
    return sheet


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="weights file (default: the shipped model)")
    parser.add_argument("--examples", type=Path, default=Path("examples"))
    args = parser.parse_args()
    clip, mask = args.examples / "car-turn.mp4", args.examples / "car-turn-mask.png"
    with tempfile.TemporaryDirectory() as tmp:
        overlay, cutout = Path(tmp) / "overlay.mp4", Path(tmp) / "cutout"
        command = ["vos", "segment", str(clip), "--mask", str(mask), "--overlay", str(overlay)]
        command += ["--cutout", str(cutout)]
        if args.weights:
            command += ["--weights", args.weights]
        subprocess.run(command, check=True)
        video = imageio.mimread(overlay, memtest=False)
        pngs = sorted(cutout.glob("*.png"))
        overlay_frames = [np.asarray(video[i])[..., :3] for i in FRAMES]
        cutout_frames = [over_checkerboard(np.asarray(Image.open(pngs[i]))) for i in FRAMES]
    tile(overlay_frames).save(args.examples / "car-turn-overlay.jpg", quality=90)
    tile(cutout_frames).save(args.examples / "car-turn-cutout.jpg", quality=90)
    print(
        f"wrote {args.examples / 'car-turn-overlay.jpg'}, {args.examples / 'car-turn-cutout.jpg'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
