"""Stop signals inside a step that must not be cut in two (vos_cli.signals.interrupts_deferred)."""

from __future__ import annotations

import os
import signal

import pytest

from vos_cli.signals import Interrupted, interrupts_deferred, stop_signals_interrupt

posix_only = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")


@posix_only
def test_sigterm_inside_takes_effect_on_leaving() -> None:
    done = []
    with stop_signals_interrupt(), pytest.raises(Interrupted) as stopped:
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            done.append("after the signal")
        done.append("after leaving")  # never reached: the signal is raised on leaving
    assert done == ["after the signal"]
    assert stopped.value.signum == signal.SIGTERM


@posix_only
def test_ctrl_c_inside_is_a_keyboard_interrupt_on_leaving() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt), interrupts_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        done.append("after the signal")
    assert done == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@posix_only
def test_nothing_pending_changes_nothing() -> None:
    before = signal.getsignal(signal.SIGINT)
    with interrupts_deferred():
        pass
    assert signal.getsignal(signal.SIGINT) is before
