"""Atomic writes: write beside the target, then ``os.replace``.

A file either appears whole under its name or not at all, and an earlier file of that name stays
whole (and loadable) until the new one is complete: a full disk, an I/O error or a killed process
leaves at most a hidden temp file (``.NAME.XXXX.tmp``), never a half-written output.

``tempfile.mkstemp`` creates files readable by their owner only; an output that appears through
``os.replace`` would keep that mode, so the temp file gets the permissions a plain ``open`` would
have given it (0o666 less the umask).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vos_cli.errors import WriteError


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


class _KeepsError:
    """A binary file that remembers the first OSError of its writes.

    ``torch.save`` turns a failed write into an unrelated RuntimeError ("unexpected pos ..."),
    so the cause the user needs (a full disk) is taken from here instead. No ``fileno``: every
    byte goes through :meth:`write`.
    """

    def __init__(self, file: Any) -> None:
        self._file = file
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._file.write(data)
        except OSError as err:
            self.error = self.error or err
            raise

    def flush(self) -> None:
        self._file.flush()


def write_atomically(path: Path, write: Callable[[Any], None], what: str) -> None:
    """Call ``write(file)`` on a temp file beside ``path``, then rename it to ``path``.

    Raises:
        WriteError: naming ``what`` and ``path`` and the cause (disk full, I/O error, ...);
            the temp file is removed and an existing ``path`` is left as it was.
    """
    path = Path(path)
    tmp: str | None = None
    sink: _KeepsError | None = None
    try:
        fd, tmp = temp_beside(path)
        with os.fdopen(fd, "wb") as file:
            sink = _KeepsError(file)
            write(sink)
        os.replace(tmp, path)
        tmp = None
    except (OSError, RuntimeError) as err:
        cause = sink.error if sink is not None and sink.error is not None else err
        if not isinstance(cause, OSError):
            raise  # not an I/O problem: a bug, not the disk
        reason = cause.strerror or str(cause)
        raise WriteError(f"Cannot write {what} {path}: {reason}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
