"""Frames stored as image files in one folder (DAVIS, YouTube-VOS, exported frames)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from vos_cli.errors import VosError
from vos_cli.io.frames import DEFAULT_FOLDER_FPS, FRAME_EXTENSIONS, FrameSource, natural_sort_key


class FolderFrameSource(FrameSource):
    """Frames stored as image files in one folder, taken in natural name order."""

    def __init__(self, path: Path, fps: float = DEFAULT_FOLDER_FPS) -> None:
        if fps <= 0:
            raise VosError(f"Frame rate must be positive, got {fps}")
        self.path = path
        self.fps = float(fps)
        self.truncated = False
        self.frames_read = 0
        self._closed = False
        try:
            files = [
                p
                for p in path.iterdir()
                if p.suffix.lower() in FRAME_EXTENSIONS
                and not p.name.startswith(".")
                and p.is_file()
            ]
        except OSError as err:
            raise VosError(f"Cannot list frame folder {path}: {err.strerror or err}") from None
        if not files:
            exts = "/".join(sorted(FRAME_EXTENSIONS))
            raise VosError(f"No {exts} frames in folder {path}")
        files.sort(key=lambda p: natural_sort_key(p.name))
        self.files: list[Path] = files
        self.num_frames = len(files)
        self.width, self.height = self._check_sizes(files)

    @staticmethod
    def _check_sizes(files: list[Path]) -> tuple[int, int]:
        """Read every header (cheap: no pixel decoding) so a bad folder fails up front."""
        first: tuple[int, int] | None = None
        for p in files:
            size = _image_size(p)
            if first is None:
                first = size
            elif size != first:
                raise VosError(
                    f"Frames differ in size: {files[0].name} is {first[0]}x{first[1]} "
                    f"but {p.name} is {size[0]}x{size[1]} (in {p.parent})"
                )
        assert first is not None
        return first

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._closed:
            raise ValueError(f"frame source {self.path} is closed")
        return self._frames()

    def _frames(self) -> Iterator[np.ndarray]:
        self.frames_read = 0
        for p in self.files:
            if self._closed:
                return
            try:
                with Image.open(p) as img:
                    frame = np.array(img.convert("RGB"))  # writable, like video frames
            except (OSError, UnidentifiedImageError) as err:
                raise VosError(f"Cannot read frame {p}: {err}") from None
            if frame.shape[:2] != (self.height, self.width):  # file changed since open
                raise VosError(f"Frame {p} changed size while reading")
            self.frames_read += 1
            yield frame

    def close(self) -> None:
        self._closed = True


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, UnidentifiedImageError) as err:
        reason = "not an image" if isinstance(err, UnidentifiedImageError) else str(err)
        raise VosError(f"Cannot read frame {path}: {reason}") from None
