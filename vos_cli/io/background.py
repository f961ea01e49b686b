"""Work handed to one background thread, a bounded number of jobs ahead of the caller.

Output encoding (PNG masks) then overlaps with the network instead of adding to it; the bound
makes a slow disk slow the producer down instead of filling memory.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from vos_cli.io.closing import Closing


class BackgroundJobs(Closing):
    """Runs submitted calls in order in one worker thread, at most ``maxsize`` waiting.

    A call's exception is re-raised in the caller's thread by a later :meth:`submit` or by
    :meth:`close`. Leaving a ``with`` block waits for every job, also on an exception or Ctrl-C
    (then without hiding the exception that is propagating).
    """

    def __init__(self, maxsize: int = 8, name: str = "writer") -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: deque[Future[Any]] = deque()
        self._maxsize = maxsize
        self.closed = False

    def submit(self, func: Callable[..., Any], *args: Any) -> None:
        """Queue ``func(*args)``; blocks while ``maxsize`` jobs wait."""
        if self.closed:
            raise ValueError("no more jobs: closed")
        while self._pending and (len(self._pending) >= self._maxsize or self._pending[0].done()):
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(func, *args))

    def close(self) -> None:
        """Wait for every queued job; re-raises the first failure."""
        self.closed = True
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        """Finish quietly (used while another exception propagates)."""
        with contextlib.suppress(Exception):
            self.close()

    def exit(self, exc: BaseException | None) -> None:
        if exc is None:
            self.close()
        else:
            self.abort()
