"""A rich progress bar for training: loss, learning rate, steps/s and ETA."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

Advance = Callable[[int, dict[str, Any]], None]


@contextlib.contextmanager
def training_progress(total: int, enabled: bool = True) -> Iterator[Advance]:
    """Yields ``advance(step, record)``; off a terminal it prints a plain line every 50 steps."""
    if not enabled:
        yield lambda step, record: None
        return
    if not sys.stderr.isatty():
        yield _plain_lines(total, print_every=50)
        return
    columns = (
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}  iou {task.fields[iou]}  lr {task.fields[lr]}"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("train", total=total, loss="-", iou="-", lr="-", rate="")

        def advance(step: int, record: dict[str, Any]) -> None:
            fields: dict[str, Any] = {}
            if record:
                fields = dict(
                    loss=f"{record['loss']:.4f}",
                    iou=f"{record['iou']:.3f}",
                    lr=f"{record['lr']:.2e}",
                    rate=f"{1.0 / max(record['sec_per_step'], 1e-9):.2f} it/s",
                )
            progress.update(task, completed=step, **fields)

        yield advance


def _plain_lines(
    total: int, print_every: int, clock: Callable[[], float] = time.monotonic
) -> Advance:
    """A line every ``print_every`` steps, for logs (``nohup``): the figures and the time left,
    from this process's mean step time (a resumed run counts from where it resumed)."""
    start: list[float] = []  # (clock, step) when this process started training

    def plain(step: int, record: dict[str, Any]) -> None:
        if not start:  # the first call: the step the run starts (or resumes) at
            start.extend((clock(), step))
        if not record or step % print_every:
            return
        done = step - start[1]
        per_step = (clock() - start[0]) / done if done > 0 else record["sec_per_step"]
        print(
            f"step {step}/{total} loss {record['loss']:.4f} iou {record['iou']:.3f} "
            f"lr {record['lr']:.2e} {record['sec_per_step']:.2f}s/step "
            f"eta {format_duration(per_step * max(total - step, 0))}",
            flush=True,
        )

    return plain


def format_duration(seconds: float) -> str:
    """``"2h 05m"``, ``"7m 30s"`` or ``"42s"``: a time left, to the precision that matters."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s}s"
