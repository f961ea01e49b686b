"""Checks for output paths, done before any compute so a long run cannot fail at the end.

Policy: we never delete the user's data. ``force`` only allows writing into an existing
non-empty folder, where files with the names we write (``00000.png`` ...) are replaced
and every other file is left alone, or replacing an existing output file. A folder is
never emptied or removed (no ``rmtree``), so masks from an earlier, longer run can remain
next to the new ones.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from vos_cli.errors import VosError

__all__ = ["prepare_output_dir", "prepare_output_file"]

# Names MaskWriter writes (vos_cli.io.masks.mask_filename): digits + .png
_MASK_NAME = re.compile(r"^\d+\.png$", re.IGNORECASE)


def _resolve(path: Path) -> Path:
    return path.expanduser().resolve(strict=False)


def _check_writable(folder: Path, what: Path) -> None:
    """Create and delete a temp file: the only reliable test (os.access lies for root, ACLs)."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".vos-write-test."):
            pass
    except OSError as err:
        raise VosError(f"Cannot write to {what}: {err.strerror or err}") from None


def _make_dirs(folder: Path, what: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise VosError(f"Cannot create {what}: {folder} exists and is not a folder") from None
    except OSError as err:
        raise VosError(f"Cannot create {what}: {err.strerror or err}") from None


def prepare_output_dir(
    path: str | Path, force: bool = False, *, protect: Iterable[str | Path] = ()
) -> Path:
    """Make ``path`` a writable folder for per-frame outputs and return it.

    Creates the folder (and parents) if needed. An existing non-empty folder is refused
    unless ``force`` (then same-named files are overwritten, others kept).

    Args:
        protect: input paths (video, frame folder, mask) that must never be overwritten:
            the output folder may not be one of them, nor directly contain one whose name
            is one we write (``00000.png`` ...), e.g. the first-frame mask of a DAVIS
            ``Annotations/<video>/`` folder. Other files next to the outputs are safe.

    Raises:
        VosError: the path is a file, the folder is non-empty without ``force``, it would
            hold an input, or it cannot be created or written.
    """
    path = Path(path).expanduser()
    target = _resolve(path)
    for p in protect:
        inp = _resolve(Path(p))
        if inp == target or (inp.parent == target and _MASK_NAME.match(inp.name)):
            raise VosError(f"Output folder {path} would overwrite the input {p}; choose another")
    if path.exists() and not path.is_dir():
        raise VosError(f"Output folder {path} exists and is not a folder")
    if path.is_dir():
        try:
            non_empty = any(path.iterdir())
        except OSError as err:
            raise VosError(f"Cannot read output folder {path}: {err.strerror or err}") from None
        if non_empty and not force:
            raise VosError(
                f"Output folder {path} is not empty; use --force to write into it "
                "(files with the same names are overwritten, nothing is deleted)"
            )
    else:
        _make_dirs(path, path)
    _check_writable(path, path)
    return path


def prepare_output_file(
    path: str | Path, force: bool = False, *, protect: Iterable[str | Path] = ()
) -> Path:
    """Check that the output file ``path`` can be written and return it.

    Creates missing parent folders; does not create the file itself. An existing file is
    refused unless ``force``. Writers replace the file by renaming a finished temp file
    over it, so only the folder needs to be writable.

    Args:
        protect: input paths that must never be overwritten, whatever ``force`` says.

    Raises:
        VosError: the path is a folder or an input, exists without ``force``, or its
            folder cannot be created or written.
    """
    path = Path(path).expanduser()
    target = _resolve(path)
    for p in protect:
        if _resolve(Path(p)) == target:
            raise VosError(f"Output file {path} is also an input; choose another name")
    if path.is_dir():
        raise VosError(f"Output file {path} is a folder")
    if (path.exists() or path.is_symlink()) and not force:
        raise VosError(f"Output file {path} already exists; use --force to overwrite it")
    parent = path.parent
    _make_dirs(parent, path)
    _check_writable(parent, path)
    return path
