"""Fault injection for the fault tests: a disk that fills, a small real filesystem, ffmpeg's
children to kill, and the checks that every file left at a final name is whole."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from vos_cli.io.masks import read_mask

LINUX = sys.platform.startswith("linux")


class _FillingFile:
    """A file whose writes stop with ENOSPC once the shared budget is spent (the last write
    goes in part, as on a real disk). No ``fileno``: writers cannot go around it."""

    def __init__(self, file: Any, disk: DiskFull) -> None:
        self._file = file
        self._disk = disk

    def write(self, data: Any) -> int:
        raw = data.encode() if isinstance(data, str) else bytes(memoryview(data).cast("B"))
        room = self._disk.budget - self._disk.used
        if len(raw) > room:
            self._disk.used += max(room, 0)
            if room > 0 and not isinstance(data, str):
                self._file.write(raw[:room])
            self._disk.failures += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._disk.used += len(raw)
        return self._file.write(data)

    def fileno(self) -> int:
        raise io.UnsupportedOperation("fileno")

    def __enter__(self) -> _FillingFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._file.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


class DiskFull:
    """Files that vos opens under ``folder`` fill a disk of ``budget`` bytes, then ENOSPC.

    Every output vos writes from Python (masks, resume state, checkpoints, CSVs) goes through
    ``os.fdopen`` on a temp file (``vos_cli.io.atomic``); this wraps those files. Linux only:
    the file's path comes from /proc/self/fd.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, folder: Path, budget: int) -> None:
        self.folder = str(folder.resolve())
        self.budget = budget
        self.used = 0
        self.failures = 0
        real_fdopen = os.fdopen

        def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
            file = real_fdopen(fd, *args, **kwargs)
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/self/fd/{fd}").startswith(self.folder + os.sep):
                    return _FillingFile(file, self)
            return file

        monkeypatch.setattr(os, "fdopen", fdopen)


@contextlib.contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (e.g. ``"64k"``) mounted at ``path``: a disk that really fills.

    Skips the test where it cannot mount (not root, no mount permission, not Linux).
    """
    if not LINUX or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root on Linux")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def grow_filesystem(path: Path, size: str) -> None:
    """Make room on a :func:`small_filesystem` (the user freeing space)."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def children(pid: int) -> list[tuple[int, list[str]]]:
    """(pid, argv) of the processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append((int(entry.name), [a.decode() for a in argv if a]))
    return found


def ffmpeg_child(pid: int, needle: str, timeout: float = 30.0) -> int:
    """The pid of the ffmpeg child of ``pid`` whose command line mentions ``needle``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child, argv in children(pid):
            if argv and "ffmpeg" in Path(argv[0]).name and any(needle in a for a in argv):
                return child
        time.sleep(0.02)
    raise AssertionError(f"no ffmpeg child of {pid} with {needle!r} in its command line")


def wait_for_masks(proc: subprocess.Popen, folder: Path, count: int, timeout: float = 120) -> None:
    """Until ``count`` masks are in ``folder`` (the run is under way); fails if it exits first."""
    deadline = time.monotonic() + timeout
    while len(list(folder.glob("*.png"))) < count:
        if proc.poll() is not None:
            raise AssertionError(f"exited early: {proc.communicate()}")
        assert time.monotonic() < deadline, "the run did not get going"
        time.sleep(0.02)


def video_frames(path: Path) -> int:
    """Decode ``path`` to the end; the frame count. Fails on any decoder complaint."""
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path)]
    cmd += ["-f", "framemd5", "-"]
    if path.suffix == ".webm":
        cmd[4:4] = ["-c:v", "libvpx-vp9"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0 and not done.stderr.strip(), (path, done.stderr)
    return sum(1 for line in done.stdout.splitlines() if line and not line.startswith("#"))


def png_count(folder: Path) -> int:
    """The PNGs in ``folder``: 00000.png .. without a gap, each decoded to its last byte."""
    names = sorted(p.name for p in folder.glob("*.png"))
    assert names == [f"{i:05d}.png" for i in range(len(names))], names
    for name in names:
        with Image.open(folder / name) as img:
            img.load()  # a cut PNG fails here
    return len(names)


def masks_equal(a: Path, b: Path, count: int | None = None) -> bool:
    """The first ``count`` masks (all of ``a``'s by default) of two folders are identical."""
    count = png_count(a) if count is None else count
    return all(
        np.array_equal(read_mask(a / f"{i:05d}.png"), read_mask(b / f"{i:05d}.png"))
        for i in range(count)
    )


def check_final_files(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` at a final name decodes completely; no temp file is left.

    Returns, per name, the frames of each video and the PNGs of each folder of them.
    """
    counts: dict[str, int] = {}
    for path in sorted(folder.rglob("*")):
        assert not path.name.startswith(".") or path.name == ".vos-segment-state.pt", path
        assert not path.name.endswith(".tmp"), path
        if path.is_dir() and any(path.glob("*.png")):
            counts[path.name] = png_count(path)
        elif path.suffix in (".mp4", ".mov", ".webm", ".mkv"):
            counts[path.name] = video_frames(path)
    return counts
