"""Reading DAVIS-layout datasets (DAVIS 2016 and 2017), shared by benchmarking and training.

Layout: ``<root>/JPEGImages/480p/<seq>/*.jpg``, ``<root>/Annotations/480p/<seq>/*.png`` and split
lists under ``<root>/ImageSets``. Everything the user can get wrong (paths, split names, sequence
names) is reported as a :class:`~vos_cli.errors.VosError` that names the offending path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from vos_cli.errors import VosError

VOID_ID = 255
"""DAVIS 2017 void label in annotations (in DAVIS 2016, 255 is the object instead)."""

RESOLUTION = "480p"


@dataclass
class DavisSequence:
    """One sequence: its frames, its (possibly partial) annotations and how to decode them.

    ``annotation_paths`` may cover only some frames (e.g. just the first one in test sets);
    ``read_annotation(i)`` indexes ``annotation_paths``, not ``frame_paths``.
    """

    name: str
    frame_paths: list[Path]
    annotation_paths: list[Path]
    binary_annotations: bool

    def read_frame(self, i: int) -> np.ndarray:
        """Frame ``i`` as an HxWx3 uint8 RGB array."""
        return read_rgb_frame(self.frame_paths[i])

    def read_annotation(self, i: int) -> np.ndarray:
        """Annotation ``i`` as HxW uint8 object ids (0 = background, 255 = void).

        DAVIS 2016 (``binary_annotations``) stores its single object as 255, so there any
        non-zero value becomes object 1 and no void exists.
        """
        return read_label_png(self.annotation_paths[i], binary=self.binary_annotations)

    def num_objects(self) -> int:
        """Number of objects, from the first annotation (max id, void excluded).

        This is how the official toolkit counts objects: ids 1..max of the first frame.
        """
        ids = self.read_annotation(0)
        ids = ids[ids != VOID_ID]
        return int(ids.max()) if ids.size else 0


def read_rgb_frame(path: Path) -> np.ndarray:
    """A frame file as an HxWx3 uint8 RGB array (read-only)."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise VosError(f"Cannot read frame {path}: {exc}") from None


def read_label_png(path: Path, *, binary: bool) -> np.ndarray:
    """Decode an index/grayscale label PNG to HxW uint8 ids.

    Palette (``P``) images give their indices and grayscale images their values; with ``binary``
    every non-zero pixel becomes 1 (RGB is then accepted too: any non-zero channel).
    """
    try:
        with Image.open(path) as img:
            mode = img.mode
            arr = np.asarray(img)
    except (OSError, ValueError) as exc:
        raise VosError(f"Cannot read label image {path}: {exc}") from exc
    if arr.ndim == 3:
        if not binary:
            raise VosError(
                f"Label image {path} is {mode}; object ids need an indexed (palette) "
                "or grayscale PNG"
            )
        color = arr[..., :-1] if mode.endswith("A") else arr  # drop an alpha channel
        arr = color.any(axis=-1)
    if binary:
        return (arr != 0).astype(np.uint8)
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if arr.size and int(arr.max()) > 255:
        raise VosError(f"Label image {path} holds ids above 255")
    return arr.astype(np.uint8, copy=False)


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise VosError(f"Cannot read split list {path}: {exc}") from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


def _names_from_pairs(lines: list[str], path: Path) -> list[str]:
    """Sequence names from a 2016 ``ImageSets/480p`` list (``/JPEGImages/480p/<seq>/x.jpg ...``)."""
    names: dict[str, None] = {}
    for lineno, line in enumerate(lines, 1):
        parts = Path(line.split()[0]).parts
        if len(parts) < 2:
            raise VosError(f"{path}:{lineno}: expected '/JPEGImages/480p/<seq>/<frame>.jpg ...'")
        names.setdefault(parts[-2], None)
    return list(names)


def _split_names(root: Path, split: str, year: str) -> list[str]:
    """Find and parse the split list; the 2016 package has two list formats.

    A ``split`` ending in ``.txt`` is a list file of one's own (one sequence name a line), so an
    experiment can hold out a wider validation set without writing into the data folder.
    """
    if split.endswith(".txt"):
        path = Path(split).expanduser()
        if not path.is_file():
            raise VosError(f"Split list {path} does not exist")
        names = list(dict.fromkeys(_read_lines(path)))
        if not names:
            raise VosError(f"Split list {path} names no sequences")
        return names
    sets = root / "ImageSets"
    if year == "2017":
        candidates = [(sets / "2017" / f"{split}.txt", False)]
    else:
        candidates = [
            (sets / "2016" / f"{split}.txt", False),
            (sets / RESOLUTION / f"{split}.txt", True),
        ]
    for path, pairs in candidates:
        if path.is_file():
            lines = _read_lines(path)
            names = _names_from_pairs(lines, path) if pairs else list(dict.fromkeys(lines))
            if not names:
                raise VosError(f"Split list {path} names no sequences")
            return names
    looked = ", ".join(str(p) for p, _ in candidates)
    raise VosError(f"No DAVIS {year} split list for split '{split}': looked for {looked}")


def load_davis(
    root: Path,
    split: str,
    year: Literal["2016", "2017"],
    sequences: list[str] | None = None,
) -> list[DavisSequence]:
    """List the sequences of a DAVIS split (no pixels are read).

    ``year`` selects the split list and the annotation convention: "2016" reads 0/255 (or
    palette) masks as one object, "2017" reads palette object ids with 255 as void.
    ``sequences`` restricts (and orders) the result; names outside the split are an error.
    """
    root = Path(root)
    if year not in ("2016", "2017"):
        raise VosError(f"DAVIS year must be 2016 or 2017, not {year!r}")
    if not root.is_dir():
        raise VosError(f"DAVIS root {root} does not exist or is not a directory")
    names = _split_names(root, split, year)
    if sequences is not None:
        known = set(names)
        wanted = list(dict.fromkeys(sequences))
        unknown = [s for s in wanted if s not in known]
        if unknown:
            raise VosError(
                f"Sequences not in DAVIS {year} split '{split}' of {root}: {', '.join(unknown)}"
            )
        names = wanted

    out: list[DavisSequence] = []
    for name in names:
        frame_dir = root / "JPEGImages" / RESOLUTION / name
        anno_dir = root / "Annotations" / RESOLUTION / name
        for folder in (frame_dir, anno_dir):
            if not folder.is_dir():
                raise VosError(f"Sequence folder {folder} is missing")
        frames = sorted(frame_dir.glob("*.jpg"))
        annos = sorted(anno_dir.glob("*.png"))
        if not frames:
            raise VosError(f"Sequence folder {frame_dir} holds no .jpg frames")
        if not annos:
            raise VosError(f"Sequence folder {anno_dir} holds no .png annotations")
        out.append(
            DavisSequence(
                name=name,
                frame_paths=frames,
                annotation_paths=annos,
                binary_annotations=year == "2016",
            )
        )
    return out
