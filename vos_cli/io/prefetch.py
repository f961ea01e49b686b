"""Iterating a slow source (a video decoder) a few items ahead of the consumer, in a thread."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from vos_cli.io.closing import Closing

T = TypeVar("T")

_DONE = object()


class Prefetcher(Closing, Generic[T]):
    """Iterate ``iterable`` in a background thread, up to ``maxsize`` items ahead.

    Used to overlap video decoding with the network; the bound keeps memory flat. One worker
    (``concurrent.futures``) pulls the items in order, one job each. Exceptions raised by the
    iterable are re-raised in the consumer at the position where they happened. :meth:`close`
    (also on leaving a ``with`` block) cancels the read-ahead and closes the underlying iterator
    in the worker once its current item is done, so Ctrl-C in the consumer does not hang.
    """

    def __init__(self, iterable: Iterable[T], maxsize: int = 4, name: str = "prefetch") -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self._iterable = iterable
        self._it: Iterator[T] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._ahead: deque[Future[Any]] = deque(
            self._pool.submit(self._pull) for _ in range(maxsize)
        )
        self._finished = False

    def _pull(self) -> Any:
        """The next item, or ``_DONE``; runs in the worker, one job at a time."""
        if self._it is None:
            self._it = iter(self._iterable)
        return next(self._it, _DONE)

    def _close_iterator(self) -> None:
        close = getattr(self._it, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):  # nothing useful to do with it here
                close()

    def __iter__(self) -> Prefetcher[T]:
        return self

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        future = self._ahead.popleft()
        self._ahead.append(self._pool.submit(self._pull))
        try:
            item = future.result()
        except BaseException:
            self.close()
            raise
        if item is _DONE:
            self.close()
            raise StopIteration
        return item

    def close(self, timeout: float = 5.0) -> None:
        """Stop reading ahead and wait (bounded) for the worker to release the iterator."""
        if self._finished:
            return
        self._finished = True
        for future in self._ahead:
            future.cancel()
        self._ahead.clear()
        released = self._pool.submit(self._close_iterator)
        with contextlib.suppress(TimeoutError, CancelledError):
            released.result(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
