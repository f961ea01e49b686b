"""A rich progress bar for training: loss, learning rate, steps/s and ETA."""

from __future__ import annotations

import contextlib
import sys
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

        def plain(step: int, record: dict[str, Any]) -> None:
            if record and step % 50 == 0:
                print(
                    f"step {step}/{total} loss {record['loss']:.4f} iou {record['iou']:.3f} "
                    f"lr {record['lr']:.2e} {record['sec_per_step']:.2f}s/step",
                    flush=True,
                )

        yield plain
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
