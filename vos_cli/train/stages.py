"""Multi-stage training: one config, several runs in sequence, each starting from the last.

A config may list ``[[stages]]``; each has a ``name`` (its sub-folder of the run folder), an
optional ``init`` (``"last"`` or ``"best"``: which checkpoint of the previous stage it starts
from; default ``"last"``) and tables that override the top-level config for that stage only
(tables are merged key by key, anything else, lists included, is replaced). The paper trains
this way: an initial training at half resolution, then fine-tuning at full resolution.

``--set key=value`` applies to every stage; ``--set <stage>.key=value`` to that stage only.
A finished stage leaves ``stage-done.json`` in its folder, so ``--resume last`` continues with
the first unfinished stage.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vos_cli.errors import VosError
from vos_cli.io.atomic import write_atomically
from vos_cli.train.config import Stage

DONE = "stage-done.json"


def stage_dir(run_dir: Path, stage: Stage) -> Path:
    return run_dir / stage.name if stage.name else run_dir


def _mark_done(folder: Path, summary: dict[str, Any]) -> None:
    data = json.dumps(summary).encode()
    write_atomically(folder / DONE, lambda file: file.write(data), "stage marker")


def run_stages(
    stages: list[Stage],
    run_dir: Path,
    resume: Path | None,
    run: Callable[[Any, Path, Path | None], Any],
    log: Callable[[str], None] = print,
) -> Any:
    """Train each stage in turn with ``run(config, folder, resume)``; returns the last result.

    ``resume`` (a checkpoint path) applies to a single-stage config; with stages, any non-None
    value means "continue": finished stages are skipped and the first unfinished one resumes
    from its own ``checkpoints/last.pt`` when it has one. Without it, an existing run is an
    error, as for a single run. A stage that is interrupted stops the sequence.
    """
    if len(stages) == 1:
        return run(stages[0].config, run_dir, resume)
    first_last = stage_dir(run_dir, stages[0]) / "checkpoints" / "last.pt"
    if resume is None and first_last.exists():
        raise VosError(
            f"{run_dir} already holds a run; continue it with --resume last, or choose another --out"
        )
    result = None
    previous: Path | None = None
    for stage in stages:
        folder = stage_dir(run_dir, stage)
        config = stage.config
        if previous is not None and not config.train.init_weights:
            start = previous / "checkpoints" / f"{stage.init}.pt"
            if not start.is_file():
                raise VosError(f"stage {stage.name!r} starts from {start}, which is missing")
            config = dataclasses.replace(
                config, train=dataclasses.replace(config.train, init_weights=str(start))
            )
        previous = folder
        if (folder / DONE).is_file():
            log(f"stage {stage.name}: finished earlier ({folder})")
            continue
        last = folder / "checkpoints" / "last.pt"
        log(f"stage {stage.name} -> {folder}")
        result = run(config, folder, last if resume is not None and last.is_file() else None)
        if getattr(result, "interrupted", False):
            return result
        _mark_done(folder, {"stage": stage.name, "steps": getattr(result, "steps", None)})
    return result
