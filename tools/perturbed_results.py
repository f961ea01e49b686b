"""Write a DAVIS results folder made from the ground truth with perturbations, for timing scoring.

Each scored frame's objects are shifted by a few pixels, get rectangles added and cut out and a
sprinkle of single pixels (odd, thin boundaries), so J and F are far from 1 and every branch of
the boundary measure runs. Deterministic (seeded). Also writes a split list naming every
sequence, so ``--split`` can take all of them.

    python tools/perturbed_results.py ../shared/data/davis16-train /tmp/davis16-perturbed
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0, 0, 0, 128] + [0] * (3 * 251)


def perturb(ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shift the id map, then paint and erase a few rectangles and pixels."""
    dy, dx = (int(v) for v in rng.integers(-6, 7, size=2))
    out = np.roll(ids, (dy, dx), axis=(0, 1))
    h, w = out.shape
    labels = [int(v) for v in np.unique(ids) if v not in (0, 255)] or [1]
    for _ in range(int(rng.integers(0, 4))):
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        size_y, size_x = (int(v) for v in rng.integers(1, 40, size=2))
        out[y : y + size_y, x : x + size_x] = rng.choice([0, *labels])
    speckle = rng.random(out.shape) < 0.0005
    out[speckle] = rng.choice(labels)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="DAVIS root (Annotations/480p/<seq>/*.png)")
    parser.add_argument("out", type=Path, help="results folder to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    names = sorted(p.name for p in (args.root / "Annotations" / "480p").iterdir() if p.is_dir())
    for name in names:
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        for path in sorted((args.root / "Annotations" / "480p" / name).glob("*.png")):
            with Image.open(path) as img:
                ids = np.asarray(img)
            if img.mode == "L":  # DAVIS 2016: 0/255 is background/object
                ids = (ids != 0).astype(np.uint8)
            out = Image.fromarray(perturb(ids, rng).astype(np.uint8))
            out.putpalette(PALETTE)  # an L image becomes P
            out.save(folder / path.name)
    (args.out.parent / f"{args.out.name}-all.txt").write_text("".join(f"{n}\n" for n in names))
    print(f"{len(names)} sequences written to {args.out}")


if __name__ == "__main__":
    main()
