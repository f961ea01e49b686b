"""Temp files for atomic writes (write beside the target, then ``os.replace``).

``tempfile.mkstemp`` creates files readable by their owner only; an output that appears through
``os.replace`` would keep that mode, so the temp file gets the permissions a plain ``open`` would
have given it (0o666 less the umask).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_beside(path: Path, suffix: str = ".tmp") -> tuple[int, str]:
    """``mkstemp`` in ``path``'s folder (hidden name), with ordinary file permissions."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    # fchmod is POSIX-only; permissions are best effort.
    with contextlib.suppress(AttributeError, OSError):
        os.fchmod(fd, 0o666 & ~_umask())
    return fd, tmp
