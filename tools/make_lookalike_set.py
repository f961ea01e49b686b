"""Write the look-alike validation set (see vos_cli/data/lookalike.py) from ../shared/data.

    python tools/make_lookalike_set.py --data ../shared/data --out data/lookalike
    vos bench davis16 --root data/lookalike --split val --weights W --processes 1

12 videos of people among people and 6 of horses among horses, 40 frames each at 480x854, on
held-out COCO scenes; the same command always writes the same pixels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vos_cli.data.lookalike import LookalikeSource, write_lookalike_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("data/lookalike"))
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    sources = [
        LookalikeSource("person", args.data / "coco-person", 12),
        LookalikeSource("horse", args.data / "weizmann-horse", 6),
    ]
    names = write_lookalike_set(
        args.out,
        sources,
        args.data / "coco-extra",
        num_frames=args.frames,
        force=args.force,
        progress=lambda done, total: print(f"\r{done}/{total} videos", end="", flush=True),
    )
    print(f"\nwrote {len(names)} videos to {args.out}")


if __name__ == "__main__":
    main()
