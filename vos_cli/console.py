"""The command line's consoles and its error handling, shared by every command module.

Kept apart from ``cli.py`` so that command modules (``bench/command.py``) can use them without
importing the CLI that registers them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from vos_cli.errors import VosError
from vos_cli.signals import (
    interrupt_exit_code,
    signal_name,
    stop_signal,
    stop_signals_interrupt,
)

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out_console = Console(highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> None:
    """``error: message`` on stderr (the message printed as it is, never as markup) and exit."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True)
    raise typer.Exit(code)


def note(message: str) -> None:
    """A ``note:`` line on stderr (progress of long steps)."""
    err_console.print(f"note: {message}")


def handles_errors(func: F) -> F:
    """Clean one-line errors instead of tracebacks for anything the user can cause.

    A VosError exits with its ``exit_code`` (2: bad input, 1: a failure while working); Ctrl-C,
    SIGTERM and SIGHUP stop the command the same way and exit with 128 + the signal.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with stop_signals_interrupt():
                return func(*args, **kwargs)
        except VosError as exc:
            message = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            fail(message, exc.exit_code)
        except KeyboardInterrupt as exc:
            signum = stop_signal(exc)
            err_console.print(f"interrupted ({signal_name(signum)})")
            raise typer.Exit(interrupt_exit_code(signum)) from None
        except MemoryError:
            fail("out of memory; try --size to run the network at a lower resolution")

    return wrapper  # type: ignore[return-value]
