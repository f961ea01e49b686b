"""ffmpeg as a subprocess we own: started apart from the terminal, its exit status checked.

imageio-ffmpeg's ``read_frames`` / ``write_frames`` generators hide the process and ignore how it
ended, so an encoder that failed on a full disk, or a decoder killed part-way, looked like a normal
end (a broken file renamed into place, a silently shorter mask sequence). Here the process is kept:
its last stderr lines are collected and its exit status decides, and :func:`exit_reason` turns both
into the one-line cause the user sees. ffmpeg runs in its own session, so the terminal's Ctrl-C and
hang-up reach only vos, which then closes the pipes and lets ffmpeg finish its file.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import threading
import time
from collections import deque
from typing import IO, Any

import imageio_ffmpeg
import numpy as np

# imageio-ffmpeg's stderr reader and header parser (size after rotation, fps, duration), the
# ones its read_frames uses; private names, present since imageio-ffmpeg 0.4
from imageio_ffmpeg._parsing import LogCatcher, parse_ffmpeg_header

from vos_cli.signals import signal_name

__all__ = ["FfmpegDecoder", "FfmpegEncoder", "exit_reason", "ffmpeg_reason"]

#: strerror texts worth naming as the cause on their own (what a user can act on)
_OS_ERRORS = (
    "No space left on device",
    "Disk quota exceeded",
    "File too large",
    "Input/output error",
    "Read-only file system",
    "Permission denied",
)


def _popen(cmd: list[str], **streams: Any) -> subprocess.Popen:
    """Start ffmpeg in a session of its own: Ctrl-C and SIGHUP of the terminal reach only us."""
    if os.name == "posix":
        return subprocess.Popen(cmd, start_new_session=True, **streams)
    flags = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
    return subprocess.Popen(cmd, creationflags=flags, **streams)


def ffmpeg_reason(text: str) -> str:
    """The most telling line of an ffmpeg log, for a one-line message ('' when none)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        for os_error in _OS_ERRORS:
            if os_error in ln:
                return os_error
    for ln in reversed(lines):
        if "error" in ln.lower() or "invalid" in ln.lower():
            # drop ffmpeg's "[out#0/mp4 @ 0x...] " context prefixes
            return re.sub(r"^(\[[^\]]*\]\s*)+", "", ln)[:200]
    return ""


def exit_reason(returncode: int, log: str, what: str) -> str:
    """Why ``what`` (``"encoder"``, ``"decoder"``) ended with ``returncode``, in a few words."""
    if returncode < 0:
        name = signal_name(-returncode)
        if name == "SIGXFSZ":  # a limit on file size (ulimit -f), not someone's kill
            name += ": over the file size limit"
        return f"the ffmpeg {what} was killed ({name})"
    return ffmpeg_reason(log) or f"the ffmpeg {what} exited with status {returncode}"


class _StderrTail(threading.Thread):
    """Drains a pipe (so ffmpeg never blocks on it), keeping its last lines."""

    def __init__(self, stream: IO[bytes], keep: int = 20) -> None:
        super().__init__(name="ffmpeg-stderr", daemon=True)
        self._stream = stream
        self._lines: deque[str] = deque(maxlen=keep)
        self.start()

    def run(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for raw in self._stream:
                self._lines.append(raw.decode("utf-8", "replace").rstrip())

    def text(self, timeout: float = 2.0) -> str:
        self.join(timeout)
        return "\n".join(self._lines)


class FfmpegEncoder:
    """One ffmpeg process encoding raw frames from its stdin into ``target``.

    :meth:`write` raises ``OSError`` when ffmpeg is gone; :meth:`finish` closes stdin, waits for
    ffmpeg to finish the file and returns None, or the reason it failed.
    """

    def __init__(
        self,
        target: str,
        size: tuple[int, int],
        fps: Any,
        codec: str,
        pix_fmt_in: str,
        pix_fmt_out: str,
        output_params: list[str],
    ) -> None:
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-f", "rawvideo", "-vcodec", "rawvideo"]
        cmd += ["-s", f"{size[0]}x{size[1]}", "-pix_fmt", pix_fmt_in, "-r", str(fps)]
        cmd += ["-i", "-", "-an", "-vcodec", codec, "-pix_fmt", pix_fmt_out, "-v", "error"]
        cmd += [*output_params, target]
        self._proc = _popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._log = _StderrTail(self._proc.stderr)  # type: ignore[arg-type]
        self.pid = self._proc.pid

    def write(self, picture: np.ndarray) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(memoryview(np.ascontiguousarray(picture)).cast("B"))

    def finish(self) -> str | None:
        """Close ffmpeg's input and wait for it; None if it finished the file cleanly."""
        with contextlib.suppress(OSError):  # already gone: the exit status says why
            self._proc.stdin.close()  # type: ignore[union-attr]
        try:
            returncode = self._proc.wait()
        except BaseException:  # interrupted while waiting: do not leave it running
            self._proc.kill()
            self._proc.wait()
            raise
        if returncode == 0:
            return None
        return exit_reason(returncode, self._log.text(), "encoder")


class FfmpegDecoder:
    """One ffmpeg process decoding a video into raw RGB frames on its stdout.

    The header (size after rotation, rate, duration, codec) is read at once; ``OSError`` if
    ffmpeg could not open the file, with its log as the message. :meth:`read` returns one frame's
    bytes, or None at the end of the stream; :meth:`failure` then says whether that end was
    ffmpeg failing (killed, crashed, non-zero exit) rather than the video's end.
    """

    def __init__(self, path: str) -> None:
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-i", path]
        cmd += ["-pix_fmt", "rgb24", "-vcodec", "rawvideo", "-f", "image2pipe", "-"]
        self._proc = _popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.pid = self._proc.pid
        self._log = LogCatcher(self._proc.stderr)
        try:
            deadline = time.monotonic() + 10.0
            while self._log.is_alive() and not self._log.header and time.monotonic() < deadline:
                time.sleep(0.01)
            if not self._log.header:
                raise OSError(self._log.get_text(0.2))
            try:
                self.meta: dict[str, Any] = parse_ffmpeg_header(self._log.header)
            except (IndexError, AttributeError, ValueError):
                raise OSError(self._log.get_text(0.2)) from None
        except BaseException:
            self.close()
            raise

    def read(self, nbytes: int) -> bytes | None:
        """The next ``nbytes`` frame, None at the end; ``EOFError`` on a partial frame."""
        assert self._proc.stdout is not None
        data = self._proc.stdout.read(nbytes)
        if not data:
            return None
        if len(data) < nbytes:
            raise EOFError("the stream ended in the middle of a frame")
        return data

    def failure(self, timeout: float = 5.0) -> str | None:
        """After the end of the stream: None if ffmpeg exited cleanly, else why it did not."""
        try:
            returncode = self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return "the ffmpeg decoder stopped sending frames but did not exit"
        if returncode == 0:
            return None
        return exit_reason(returncode, self._log.get_text(0.4), "decoder")

    def close(self) -> None:
        """Stop ffmpeg now (it may be mid-file); safe to call more than once."""
        self._log.stop_me()
        if self._proc.poll() is None:
            self._proc.kill()
        with contextlib.suppress(OSError, ValueError):
            self._proc.stdout.close()  # type: ignore[union-attr]
        self._proc.wait()
