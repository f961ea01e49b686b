"""Object-id masks: reading user masks, writing DAVIS palette PNGs, resizing.

A mask (label map) is an HxW ``uint8`` array of object ids: 0 is background, 1..254 are
objects, 255 is "void / ignore" as in DAVIS. Output masks are palette PNGs with the DAVIS
palette, so they open in the usual VOS tools and evaluation scripts unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from vos_cli.errors import VosError
from vos_cli.io.atomic import write_atomically
from vos_cli.io.background import BackgroundJobs

__all__ = [
    "DAVIS_PALETTE",
    "VOID_ID",
    "MaskWriter",
    "NamedPngWriter",
    "mask_filename",
    "object_ids",
    "read_mask",
    "resize_nearest",
    "write_mask",
]

#: Label of "void / don't care" pixels (DAVIS, PASCAL VOC); never an object.
VOID_ID = 255


def _voc_palette() -> np.ndarray:
    """The PASCAL VOC / DAVIS palette: bits of the index interleaved into R, G, B (MSB first)."""
    idx = np.arange(256)
    pal = np.zeros((256, 3), dtype=np.int64)
    for bit in range(8):
        for channel in range(3):
            pal[:, channel] |= ((idx >> (3 * bit + channel)) & 1) << (7 - bit)
    return pal.astype(np.uint8)


#: The standard DAVIS palette, (256, 3) uint8: 0 black, 1 (128,0,0), 2 (0,128,0), ...
DAVIS_PALETTE: np.ndarray = _voc_palette()
DAVIS_PALETTE.setflags(write=False)


def object_ids(label_map: np.ndarray) -> list[int]:
    """Sorted object ids present in a label map (background 0 and void 255 excluded)."""
    ids = np.unique(label_map)
    return [int(i) for i in ids if i != 0 and i != VOID_ID]


def read_mask(path: str | Path, *, require_object: bool = False) -> np.ndarray:
    """Read a mask image as an HxW ``uint8`` map of object ids.

    * Palette (``P`` mode) PNGs keep their indices as ids: gaps are allowed and 255 stays
      255 (void), as in DAVIS / YouTube-VOS annotations.
    * Any other image (grayscale, binary, RGB, 16-bit) is a single-object mask: any
      non-zero pixel is object 1. With an alpha channel, fully transparent pixels are
      background. JPEG masks are thresholded at 128 instead, because compression noise
      makes the background around edges slightly non-zero.

    Args:
        require_object: raise if the mask contains no object (only 0 / 255), which is
            what a first-frame mask for tracking needs.

    Raises:
        VosError: missing file, not an image, or (with ``require_object``) no object.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise VosError(f"Mask not found: {path}")
    if not path.is_file():
        raise VosError(f"Mask is not a file: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            labels = _labels_from_image(img)
    except UnidentifiedImageError:
        raise VosError(f"Mask is not an image: {path}") from None
    except OSError as err:
        raise VosError(f"Cannot read mask {path}: {err}") from None
    if require_object and not object_ids(labels):
        raise VosError(f"Mask {path} contains no object (every pixel is background 0 or void 255)")
    return labels


def _labels_from_image(img: Image.Image) -> np.ndarray:
    if img.mode == "P":
        return np.array(img, dtype=np.uint8)  # indices = ids
    if img.mode == "PA":
        arr = np.array(img)  # (H, W, 2): index, alpha
        return np.where(arr[..., 1] > 0, arr[..., 0], 0).astype(np.uint8)
    threshold = 128 if img.format == "JPEG" else 1
    if img.mode in ("RGBA", "LA", "La", "RGBa") or "transparency" in img.info:
        rgba = np.asarray(img.convert("RGBA"))
        fg = (rgba[..., :3].max(axis=-1) >= threshold) & (rgba[..., 3] > 0)
    elif img.mode in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F"):
        fg = np.asarray(img) >= threshold
    else:  # RGB, CMYK, YCbCr, ...; not via "L", which rounds dark colours to 0
        fg = np.asarray(img.convert("RGB")).max(axis=-1) >= threshold
    return fg.astype(np.uint8)


def _as_label_map(label_map: np.ndarray) -> np.ndarray:
    arr = np.asarray(label_map)
    if arr.ndim != 2:
        raise ValueError(f"label map must be 2-D (H, W), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError("label map values must be in 0..255")
        arr = arr.astype(np.uint8)
    return np.ascontiguousarray(arr)


def write_mask(path: str | Path, label_map: np.ndarray) -> None:
    """Write a label map as a DAVIS-palette PNG, atomically.

    The image goes to a hidden temp file in the same folder, then ``os.replace`` moves it
    into place, so a crash or Ctrl-C never leaves a half-written PNG under the final name
    (no fsync: this guards against our process dying, not against power loss).

    Raises:
        WriteError: the file cannot be written (permissions, disk full, ...).
        ValueError: ``label_map`` is not a 2-D array of values in 0..255.
    """
    path = Path(path)
    arr = _as_label_map(label_map)
    img = Image.frombytes("P", (arr.shape[1], arr.shape[0]), arr.tobytes())
    img.putpalette(DAVIS_PALETTE.tobytes())
    write_atomically(path, lambda file: img.save(file, format="PNG"), "mask")


def resize_nearest(label_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a label map to ``size = (W, H)`` with nearest-neighbour sampling.

    Ids must never be interpolated (a blend of ids 1 and 3 is not object 2). Sampling
    is pixel-centre aligned, like PIL's NEAREST and torch's ``nearest-exact``.
    """
    width, height = (int(v) for v in size)
    if width <= 0 or height <= 0:
        raise ValueError(f"size must be positive (W, H), got {size}")
    arr = np.asarray(label_map)
    if arr.ndim < 2:
        raise ValueError(f"label map must be at least 2-D, got shape {arr.shape}")
    in_h, in_w = arr.shape[:2]
    if (in_w, in_h) == (width, height):
        return arr.copy()
    rows = np.minimum(((np.arange(height) + 0.5) * in_h / height).astype(np.intp), in_h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * in_w / width).astype(np.intp), in_w - 1)
    return arr[rows[:, None], cols[None, :]]


def mask_filename(index: int) -> str:
    """``00042.png``: the DAVIS naming, 5 digits (more only past 99999 frames)."""
    return f"{index:05d}.png"


class MaskWriter(BackgroundJobs):
    """Writes ``00000.png, 00001.png, ...`` into a folder from a background thread.

    A failure is re-raised by a later :meth:`write` or by :meth:`close`; leaving a ``with``
    block flushes what was queued, also on an exception or Ctrl-C, so every mask handed over is
    on disk (each PNG is atomic). After a failed mask no later one is written, so the masks on
    disk are always frames ``first .. first + written - 1`` without a gap.
    """

    def __init__(self, folder: str | Path, maxsize: int = 8) -> None:
        self.folder = _make_folder(folder)
        self.written = 0
        """Masks this writer has put on disk."""
        self.failed = False
        super().__init__(maxsize, name="mask-writer")

    def _write(self, path: Path, label_map: np.ndarray) -> None:
        if self.failed:
            return
        try:
            write_mask(path, label_map)
        except BaseException:
            self.failed = True
            raise
        self.written += 1

    def write(self, index: int, label_map: np.ndarray) -> None:
        """Queue mask ``index``; blocks while the queue is full. The array is copied."""
        if self.closed:
            raise ValueError("MaskWriter is closed")
        if index < 0:
            raise ValueError(f"frame index must be >= 0, got {index}")
        self.submit(
            self._write, self.folder / mask_filename(index), _as_label_map(label_map).copy()
        )

    def after_masks(self, job: Callable[[], None]) -> None:
        """Run ``job`` in the writer's thread once every mask queued so far is on disk.

        Skipped if a mask failed: what ``job`` writes (the resume state) may then count on
        every earlier mask being there.
        """
        self.submit(self._after_masks, job)

    def _after_masks(self, job: Callable[[], None]) -> None:
        if not self.failed:
            job()


class NamedPngWriter(BackgroundJobs):
    """Writes ``<folder>/<stem>.png`` palette masks from one background thread.

    Unlike :class:`MaskWriter` the file names are the caller's (a dataset's frame names, e.g.
    YouTube-VOS's ``00005``, which the official scorers look up), and arrays are not copied.
    """

    def __init__(self, folder: str | Path, maxsize: int = 8) -> None:
        self.folder = _make_folder(folder)
        self.written = 0
        super().__init__(maxsize, name="png-writer")

    def write(self, stem: str, label_map: np.ndarray) -> None:
        """Queue a mask; the array must not be modified afterwards (tracker output never is)."""
        self.submit(write_mask, self.folder / f"{stem}.png", label_map)
        self.written += 1


def _make_folder(folder: str | Path) -> Path:
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise VosError(f"Cannot create folder {path}: {err.strerror or err}") from None
    return path
