"""``vos segment --resume``: the state a run keeps beside its masks, so a stopped run continues.

Every :data:`STATE_EVERY` frames (and at the start, and when the run stops on Ctrl-C, a signal or
an error) the tracker's :meth:`~vos_cli.inference.tracker.Tracker.snapshot` is written atomically to
``<masks>/.vos-segment-state.pt``, by the mask writer's thread after every earlier mask is on disk.
So the state never claims a mask that is missing, also after ``kill -9``. A resumed run restores
the tracker and goes on from the state's frame: the masks it (re)writes are the ones an
uninterrupted run writes, bit for bit, on the same device and precision. Videos cannot be appended
to, so the overlay, cut-out and matte are encoded again from frame 0, from the masks on disk for
frames before the state's. A run that finishes removes the state.

The state also records what the run was (input, masks, weights, --size, --flip) so that a
resume with other inputs is refused instead of producing a mix of two runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from vos_cli.errors import VosError
from vos_cli.io.masks import mask_filename
from vos_cli.model.factory import atomic_save

STATE_NAME = ".vos-segment-state.pt"
#: frames between two saved states: a resumed run redoes at most this many after a kill -9
STATE_EVERY = 25
FORMAT = "vos-segment-state"

#: what the fingerprint's keys are called on the command line, for refusals
_OPTION_NAMES = {
    "source": "input video",
    "masks": "--mask",
    "weights": "--weights",
    "size": "--size",
    "flip": "--flip",
    "prompts": "--box / --point mask",
}


def state_path(out_dir: Path) -> Path:
    return out_dir / STATE_NAME


def _file_id(path: Path) -> list[Any]:
    """Resolved path, size and modification time: a changed file is another file."""
    path = path.expanduser().resolve()
    stat = path.stat()
    return [str(path), stat.st_size, stat.st_mtime_ns]


def _folder_id(path: Path, files: Iterable[Path]) -> list[Any]:
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(f"{file.name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return [str(path.expanduser().resolve()), digest.hexdigest()]


def fingerprint(
    source: Path,
    frame_files: list[Path] | None,
    masks: list[tuple[int, Path]],
    weights: Path,
    size: int | None,
    flip: bool,
) -> dict[str, Any]:
    """What must be the same for a run to continue another: its inputs and the tracking options.

    ``frame_files``: a frame folder's images (None for a video file). Masks are compared by
    content, so copying the mask elsewhere does not block a resume.
    """
    return {
        "source": _folder_id(source, frame_files) if frame_files is not None else _file_id(source),
        "masks": sorted(
            [index, hashlib.sha256(path.expanduser().read_bytes()).hexdigest()]
            for index, path in masks
        ),
        "weights": _file_id(weights),
        "size": size,
        "flip": flip,
    }


def save_state(
    out_dir: Path,
    frame: int,
    tracker: dict[str, Any],
    run: dict[str, Any],
    outputs: list[str],
    device: str,
) -> None:
    """Write the state for continuing at ``frame`` (masks ``0 .. frame - 1`` are on disk)."""
    payload = {
        "format": FORMAT,
        "frame": frame,
        "tracker": tracker,
        "run": run,
        "outputs": outputs,
        "device": device,
    }
    atomic_save(payload, state_path(out_dir), what="resume state")


def load_state(out_dir: Path) -> dict[str, Any] | None:
    """The state of an unfinished run in ``out_dir``, None when there is none."""
    path = state_path(out_dir)
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise VosError(f"cannot read the resume state {path} ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise VosError(f"{path} is not a vos segment state")
    return data


def check_same_run(state: dict[str, Any], run: dict[str, Any], out_dir: Path) -> None:
    """VosError naming the first option that differs from the interrupted run's."""
    for key, value in run.items():
        if state["run"].get(key) != value:
            raise VosError(
                f"--resume: the run in {out_dir} was started with another "
                f"{_OPTION_NAMES.get(key, key)}; give the same inputs and options, or start "
                "over with --force instead of --resume"
            )


def check_masks_present(out_dir: Path, frame: int) -> None:
    """Every mask before the state's frame must still be there (none deleted since)."""
    for index in range(frame):
        if not (out_dir / mask_filename(index)).is_file():
            raise VosError(
                f"--resume: {out_dir / mask_filename(index)} of the interrupted run is missing; "
                "start over with --force instead of --resume"
            )


def remove_state(out_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        state_path(out_dir).unlink()


def remove_leftovers(out_dir: Path | None, files: Iterable[Path], folders: Iterable[Path]) -> int:
    """Delete the hidden temp files a killed run left (never a file at a final name).

    ``out_dir``: the masks folder (``.00012.png.XXXX.tmp``, the state's temp); ``files``: video
    outputs (``.overlay.mp4.XXXX.partial.mp4`` beside them); ``folders``: PNG cut-outs (ffmpeg's
    ``00012.png.tmp``). Returns how many were removed.
    """
    patterns: list[tuple[Path, re.Pattern[str]]] = []
    if out_dir is not None:
        patterns.append(
            (out_dir, re.compile(r"^\.(\d+\.png|" + re.escape(STATE_NAME) + r")\..+\.tmp$"))
        )
    for file in files:
        name, suffix = re.escape(file.name), re.escape(file.suffix)
        patterns.append((file.parent, re.compile(rf"^\.{name}\..+\.partial{suffix}$")))
    for folder in folders:
        patterns.append((folder, re.compile(r"^\d+\.png\.tmp$")))
    removed = 0
    for folder, pattern in patterns:
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                if pattern.match(entry.name) and entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                        removed += 1
    return removed
