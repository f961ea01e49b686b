"""The plain progress lines a training run writes to a log: figures and the time left."""

from __future__ import annotations

from vos_cli.train.progress import _plain_lines, format_duration


def test_format_duration_picks_the_units_that_matter() -> None:
    assert format_duration(42.4) == "42s"
    assert format_duration(450) == "7m 30s"
    assert format_duration(7500) == "2h 05m"
    assert format_duration(0) == "0s"


def _record(seconds: float) -> dict:
    return {"loss": 1.25, "iou": 0.5, "lr": 2e-4, "sec_per_step": seconds}


def test_time_left_comes_from_the_mean_step_since_the_run_resumed(capsys) -> None:
    now = [1000.0]
    advance = _plain_lines(total=400, print_every=50, clock=lambda: now[0])
    advance(100, {})  # resumed at step 100
    now[0] += 40 * 6.0  # 40 steps at 6 s: not a multiple of 50, nothing printed
    advance(140, _record(6.0))
    assert capsys.readouterr().out == ""
    now[0] += 10 * 12.0  # 50 steps in 360 s since the resume: 7.2 s a step, 250 steps left
    advance(150, _record(12.0))
    line = capsys.readouterr().out.strip()
    assert line == "step 150/400 loss 1.2500 iou 0.500 lr 2.00e-04 12.00s/step eta 30m 00s"


def test_the_first_line_without_a_mean_uses_the_last_step(capsys) -> None:
    advance = _plain_lines(total=100, print_every=50, clock=lambda: 5.0)
    advance(50, _record(2.0))  # started here and printed at once: no step timed yet
    assert capsys.readouterr().out.strip().endswith("2.00s/step eta 1m 40s")
