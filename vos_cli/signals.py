"""SIGTERM and SIGHUP (a job scheduler's stop, a closed terminal) handled like Ctrl-C.

Python turns SIGINT into ``KeyboardInterrupt``, and every command already stops cleanly on it:
writers flush, videos are finished as valid shorter files, training saves a checkpoint. The other
two stop signals would kill the process on the spot, leaving temp files and no message, so while a
command runs they raise :class:`Interrupted`, a ``KeyboardInterrupt`` that remembers the signal,
and the command exits with ``128 + signal`` as a shell reports a process stopped by it (130 for
SIGINT, 143 for SIGTERM, 129 for SIGHUP).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

#: Signals handled like Ctrl-C (those the platform has: Windows has no SIGHUP).
STOP_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Interrupted(KeyboardInterrupt):
    """A stop signal other than SIGINT, raised where Ctrl-C's KeyboardInterrupt would be."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def stop_signal(exc: BaseException | None) -> int:
    """The signal behind a KeyboardInterrupt: SIGINT unless it is an :class:`Interrupted`."""
    return getattr(exc, "signum", int(signal.SIGINT))


def interrupt_exit_code(signum: int) -> int:
    """``128 + signum``: what a shell reports for a process stopped by that signal."""
    return 128 + signum


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise :class:`Interrupted` in the main thread.

    A no-op outside the main thread (only it may set handlers). A signal the process was told
    to ignore stays ignored (``nohup`` ignores SIGHUP). The previous handlers come back on
    leaving, so library callers and tests keep their own.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    try:
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, _raise_interrupted)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP arriving inside take effect on leaving it, not midway.

    For a few steps that must happen together (a frame's tracker step and its mask on disk): a
    stop between them would leave the tracker a frame ahead of the masks, and the state saved at
    the stop would not match them. A no-op outside the main thread; handlers are restored on
    leaving, and the first signal that came is then raised as it would have been.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def remember(signum: int, frame: Any) -> None:
        pending.append(signum)

    previous = {}
    try:
        for signum in (signal.SIGINT, *STOP_SIGNALS):
            handler = signal.getsignal(signum)
            if handler not in (signal.SIG_IGN, signal.SIG_DFL, None):
                previous[signum] = signal.signal(signum, remember)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if pending:
        handler = previous[pending[0]]
        if callable(handler):
            handler(pending[0], None)


def ignore_stop_signals(worker_id: int = 0) -> None:
    """A DataLoader ``worker_init_fn``: the loader's workers ignore Ctrl-C, SIGTERM and SIGHUP.

    A terminal's Ctrl-C, ``timeout`` and a job scheduler signal the whole process group. A
    worker that died of it would make the main process fail mid-step with "DataLoader worker
    killed by signal" (a traceback, no checkpoint); ignoring it there lets the main process
    stop as it does alone (finish the step, save a checkpoint) and shut its workers down.
    """
    for signum in (signal.SIGINT, *STOP_SIGNALS):
        signal.signal(signum, signal.SIG_IGN)
