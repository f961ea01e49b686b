"""``with obj:`` for objects that own a thread, a subprocess or a file and have ``close()``."""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

C = TypeVar("C", bound="Closing")


class Closing:
    """Leaving a ``with`` block calls :meth:`exit`, by default ``close()``.

    One definition of the context-manager protocol for the frame sources, the prefetcher, the
    background writers and the video writers; a subclass that must act differently while an
    exception propagates overrides :meth:`exit`.
    """

    def close(self) -> None:
        raise NotImplementedError

    def exit(self, exc: BaseException | None) -> None:
        """Called on leaving a ``with`` block, ``exc`` the exception propagating, if any."""
        self.close()

    def __enter__(self: C) -> C:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.exit(exc)
