"""Resident memory of this process: now, its lifetime peak, and the peak over a block of code."""

from __future__ import annotations

import resource
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from vos_cli.io.closing import Closing

_MB = 1024.0 * 1024.0


def current_rss_mb() -> float | None:
    """This process's resident set size now (Linux ``/proc``); None where unavailable."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def ru_maxrss_mb(value: int) -> float:
    """A ``ru_maxrss`` in MB: the field is in kB on Linux but in bytes on macOS."""
    return value / _MB if sys.platform == "darwin" else value / 1024.0


def max_rss_mb() -> float:
    """Peak RSS over this process's lifetime."""
    return ru_maxrss_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


class RssSampler(Closing):
    """Samples RSS in a worker thread from construction to :meth:`close` (or the end of a
    ``with`` block): ``ru_maxrss`` cannot be reset, so per-run peaks need sampling."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.start_mb = current_rss_mb()
        self.peak_mb = self.start_mb
        self.samples = 0
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rss-sampler")
        self._job = self._pool.submit(self._run) if self.start_mb is not None else None

    def _sample(self) -> None:
        now = current_rss_mb()
        self.samples += 1
        if now is not None and (self.peak_mb is None or now > self.peak_mb):
            self.peak_mb = now

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def close(self) -> None:
        """Stop sampling, with a last sample."""
        self._stop.set()
        if self._job is not None:
            self._job.result()
        self._pool.shutdown()
        self._sample()

    @property
    def increase_mb(self) -> float | None:
        if self.start_mb is None or self.peak_mb is None:
            return None
        return self.peak_mb - self.start_mb
