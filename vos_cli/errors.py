"""User-facing errors.

Anything the user can cause (bad paths, bad files, impossible options) is raised as
:class:`VosError`; the CLI prints its one-line message and exits with its :attr:`exit_code`
instead of showing a traceback: 2 for bad input, 1 for a failure while the work ran (an output
that could not be written, a decoder that died), so scripts can tell the two apart.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TypeVar

E = TypeVar("E", bound="VosError")


class VosError(Exception):
    """An error caused by the user's input, reported as one line without a traceback."""

    exit_code: int = 2


class WriteError(VosError):
    """An output could not be written: disk full, I/O error, an encoder that failed or died."""

    exit_code = 1


class DecoderError(VosError):
    """The video decoder failed part-way (crashed, killed), not a damaged but readable file."""

    exit_code = 1


class PartialRunError(VosError):
    """A run that stopped part-way on ``cause``; what it wrote before is valid.

    Attributes:
        cause: the error that stopped the run (its class sets :attr:`exit_code`).
        frames_done: frames the tracker finished.
        masks_written: mask PNGs on disk, frames ``0 .. masks_written - 1`` (0 without masks).
        out_dir: the masks folder, None when no masks were asked for.
    """

    def __init__(
        self,
        message: str,
        cause: VosError,
        frames_done: int,
        masks_written: int,
        out_dir: Path | None,
    ) -> None:
        super().__init__(message)
        self.cause = cause
        self.frames_done = frames_done
        self.masks_written = masks_written
        self.out_dir = out_dir
        self.exit_code = cause.exit_code


def reworded(exc: E, message: str) -> E:
    """``exc`` with another message, same class and exit code (to add context such as a name)."""
    new = copy.copy(exc)
    new.args = (message,)
    return new
